;; A float32 matrix product C = A·B, for the matmuls that XNNPACK runs at ~60% of what one wasm
;; thread can multiply and add (the lesson's [1120, 256]·[256, 1027]: ~18 GMAC/s a thread in the
;; library, ~25 here; a register-only loop peaks at ~29). A module of its own because wasm-simd.wat
;; is at the 4 KB that browsers compile synchronously on the main thread.
;;
;; B is first packed into panels of 8 columns (pack_b): each panel the bias's 8 floats (zeros
;; without one), then K rows of 8 floats, the last panel padded with zeros. Each 4-row tile of C
;; times one panel is then 8 accumulators of 4 lanes that stay in registers over all of K. Each
;; output is one chain: from the bias (or +0), the products a[i][0]·b[0][j], a[i][1]·b[1][j], ...
;; added in order, a multiply and an add each (WebAssembly SIMD has no fused multiply-add): XNNPACK's
;; order, so the same bits (test/gemm.test.ts).
;;
;; gemm() does rows [m0, m1) of C, so two threads can each do a share of the rows (gemm.ts).
;;
;; scripts/build-wasm.js compiles this file into wasm-gemm-binary.ts; gemm.ts uses it.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; B [k, n] row-major at `b`, and the bias [n] at `bias` where `hasBias`, into panels at `dst`:
  ;; the panel of columns p..p+7 at dst + 32·(k+1)·p/8, its bias first (zeros without one), then
  ;; row r of B at + 32·(r+1); columns past n are zeros. dst holds 32·(k+1)·ceil(n/8) bytes.
  (func (export "pack_b") (param $b i32) (param $k i32) (param $n i32) (param $bias i32) (param $hasBias i32)
    (param $dst i32)
    (local $p i32) (local $r i32) (local $j i32) (local $src i32) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $panels
      (br_if $done (i32.ge_u (local.get $p) (local.get $n)))
      (v128.store (local.get $dst) (v128.const i32x4 0 0 0 0))
      (v128.store offset=16 (local.get $dst) (v128.const i32x4 0 0 0 0))
      (if (local.get $hasBias)
        (then
          (local.set $j (i32.const 0))
          (loop $cols
            (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
              (f32.load (i32.add (local.get $bias) (i32.shl (i32.add (local.get $p) (local.get $j)) (i32.const 2)))))
            (br_if $cols (i32.and
              (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.const 8))
              (i32.lt_u (i32.add (local.get $p) (local.get $j)) (local.get $n)))))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (local.set $src (i32.add (local.get $b) (i32.shl (local.get $p) (i32.const 2))))
      (local.set $r (i32.const 0))
      (if (i32.ge_u (i32.sub (local.get $n) (local.get $p)) (i32.const 8))
        (then
          (loop $rows
            (v128.store (local.get $dst) (v128.load (local.get $src)))
            (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (local.set $src (i32.add (local.get $src) (local.get $rowBytes)))
            (br_if $rows (i32.lt_u (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $k)))))
        (else
          (loop $rows
            (v128.store (local.get $dst) (v128.const i32x4 0 0 0 0))
            (v128.store offset=16 (local.get $dst) (v128.const i32x4 0 0 0 0))
            (local.set $j (i32.const 0))
            (loop $cols
              (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
                (f32.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2)))))
              (br_if $cols (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1)))
                (i32.sub (local.get $n) (local.get $p)))))
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (local.set $src (i32.add (local.get $src) (local.get $rowBytes)))
            (br_if $rows (i32.lt_u (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $k))))))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (br $panels))))

  ;; The first `count` (< 8) of the 8 floats v0, v1 to `at`: a panel's columns that exist.
  (func $store_part (param $at i32) (param $v0 v128) (param $v1 v128) (param $count i32)
    (f32.store (local.get $at) (f32x4.extract_lane 0 (local.get $v0)))
    (if (i32.le_u (local.get $count) (i32.const 1)) (then (return)))
    (f32.store offset=4 (local.get $at) (f32x4.extract_lane 1 (local.get $v0)))
    (if (i32.le_u (local.get $count) (i32.const 2)) (then (return)))
    (f32.store offset=8 (local.get $at) (f32x4.extract_lane 2 (local.get $v0)))
    (if (i32.le_u (local.get $count) (i32.const 3)) (then (return)))
    (f32.store offset=12 (local.get $at) (f32x4.extract_lane 3 (local.get $v0)))
    (if (i32.le_u (local.get $count) (i32.const 4)) (then (return)))
    (f32.store offset=16 (local.get $at) (f32x4.extract_lane 0 (local.get $v1)))
    (if (i32.le_u (local.get $count) (i32.const 5)) (then (return)))
    (f32.store offset=20 (local.get $at) (f32x4.extract_lane 1 (local.get $v1)))
    (if (i32.le_u (local.get $count) (i32.const 6)) (then (return)))
    (f32.store offset=24 (local.get $at) (f32x4.extract_lane 2 (local.get $v1))))

  ;; Rows [m0, m1) of C [m, n] at `c` = bias + A [m, k] at `a` times B, packed at `bp` (pack_b); k >= 1.
  ;; The columns go in blocks of `blockCols` (a multiple of 8), whose packed panels stay in the L2
  ;; cache while every 4-row tile of A (in L1) meets each of them: A is read once a block, not once
  ;; a panel (129 times for the lesson's output layer, 1.1 MB each time).
  (func (export "gemm") (param $a i32) (param $bp i32) (param $c i32) (param $m0 i32) (param $m1 i32)
    (param $k i32) (param $n i32) (param $blockCols i32)
    (local $p0 i32) (local $p1 i32) (local $p i32) (local $i i32) (local $r i32) (local $left i32)
    (local $kBytes i32) (local $nBytes i32) (local $panelBytes i32)
    (local $panel i32) (local $pa i32) (local $pb i32) (local $pc i32)
    (local $x v128) (local $b0 v128) (local $b1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $kBytes (i32.shl (local.get $k) (i32.const 2)))
    (local.set $nBytes (i32.shl (local.get $n) (i32.const 2)))
    (local.set $panelBytes (i32.add (local.get $kBytes) (i32.const 4)))
    (block $done (loop $blocks
      (br_if $done (i32.ge_u (local.get $p0) (local.get $n)))
      (local.set $p1 (i32.add (local.get $p0) (local.get $blockCols)))
      (if (i32.gt_u (local.get $p1) (local.get $n)) (then (local.set $p1 (local.get $n))))
      (local.set $i (local.get $m0))
      ;; Four rows at a time, each tile against every panel of the block.
      (block $tiles4 (loop $rows4
        (br_if $tiles4 (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $m1)))
        (local.set $p (local.get $p0))
        (loop $panels4
          (local.set $left (i32.sub (local.get $n) (local.get $p)))
          (local.set $panel (i32.add (local.get $bp) (i32.mul (local.get $p) (local.get $panelBytes))))
          (local.set $c00 (v128.load (local.get $panel))) (local.set $c01 (v128.load offset=16 (local.get $panel)))
          (local.set $c10 (local.get $c00)) (local.set $c11 (local.get $c01))
          (local.set $c20 (local.get $c00)) (local.set $c21 (local.get $c01))
          (local.set $c30 (local.get $c00)) (local.set $c31 (local.get $c01))
          (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $kBytes))))
          (local.set $pb (i32.add (local.get $panel) (i32.const 32)))
          (local.set $r (local.get $k))
          (loop $ks
            (local.set $b0 (v128.load (local.get $pb)))
            (local.set $b1 (v128.load offset=16 (local.get $pb)))
            (local.set $x (v128.load32_splat (local.get $pa)))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $x (v128.load32_splat (i32.add (local.get $pa) (local.get $kBytes))))
            (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $x (v128.load32_splat (i32.add (local.get $pa) (i32.shl (local.get $kBytes) (i32.const 1)))))
            (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $x (v128.load32_splat (i32.add (local.get $pa) (i32.mul (local.get $kBytes) (i32.const 3)))))
            (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $b0))))
            (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $b1))))
            (local.set $pa (i32.add (local.get $pa) (i32.const 4)))
            (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
            (br_if $ks (local.tee $r (i32.sub (local.get $r) (i32.const 1)))))
          (local.set $pc (i32.add (local.get $c)
            (i32.add (i32.mul (local.get $i) (local.get $nBytes)) (i32.shl (local.get $p) (i32.const 2)))))
          (if (i32.ge_u (local.get $left) (i32.const 8))
            (then
              (v128.store (local.get $pc) (local.get $c00))
              (v128.store offset=16 (local.get $pc) (local.get $c01))
              (local.set $pc (i32.add (local.get $pc) (local.get $nBytes)))
              (v128.store (local.get $pc) (local.get $c10))
              (v128.store offset=16 (local.get $pc) (local.get $c11))
              (local.set $pc (i32.add (local.get $pc) (local.get $nBytes)))
              (v128.store (local.get $pc) (local.get $c20))
              (v128.store offset=16 (local.get $pc) (local.get $c21))
              (local.set $pc (i32.add (local.get $pc) (local.get $nBytes)))
              (v128.store (local.get $pc) (local.get $c30))
              (v128.store offset=16 (local.get $pc) (local.get $c31)))
            (else
              (call $store_part (local.get $pc) (local.get $c00) (local.get $c01) (local.get $left))
              (local.set $pc (i32.add (local.get $pc) (local.get $nBytes)))
              (call $store_part (local.get $pc) (local.get $c10) (local.get $c11) (local.get $left))
              (local.set $pc (i32.add (local.get $pc) (local.get $nBytes)))
              (call $store_part (local.get $pc) (local.get $c20) (local.get $c21) (local.get $left))
              (local.set $pc (i32.add (local.get $pc) (local.get $nBytes)))
              (call $store_part (local.get $pc) (local.get $c30) (local.get $c31) (local.get $left))))
          (br_if $panels4 (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 8))) (local.get $p1))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rows4)))
      ;; The rows left, one at a time.
      (block $tiles1 (loop $rows1
        (br_if $tiles1 (i32.ge_u (local.get $i) (local.get $m1)))
        (local.set $p (local.get $p0))
        (loop $panels1
          (local.set $left (i32.sub (local.get $n) (local.get $p)))
          (local.set $panel (i32.add (local.get $bp) (i32.mul (local.get $p) (local.get $panelBytes))))
          (local.set $c00 (v128.load (local.get $panel))) (local.set $c01 (v128.load offset=16 (local.get $panel)))
          (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $kBytes))))
          (local.set $pb (i32.add (local.get $panel) (i32.const 32)))
          (local.set $r (local.get $k))
          (loop $ks
            (local.set $x (v128.load32_splat (local.get $pa)))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (v128.load (local.get $pb)))))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (v128.load offset=16 (local.get $pb)))))
            (local.set $pa (i32.add (local.get $pa) (i32.const 4)))
            (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
            (br_if $ks (local.tee $r (i32.sub (local.get $r) (i32.const 1)))))
          (local.set $pc (i32.add (local.get $c)
            (i32.add (i32.mul (local.get $i) (local.get $nBytes)) (i32.shl (local.get $p) (i32.const 2)))))
          (if (i32.ge_u (local.get $left) (i32.const 8))
            (then
              (v128.store (local.get $pc) (local.get $c00))
              (v128.store offset=16 (local.get $pc) (local.get $c01)))
            (else (call $store_part (local.get $pc) (local.get $c00) (local.get $c01) (local.get $left))))
          (br_if $panels1 (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 8))) (local.get $p1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows1)))
      (local.set $p0 (local.get $p1))
      (br $blocks))))
)
