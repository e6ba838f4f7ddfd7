;; The loss's softmax over the vocabulary, one pass per row instead of five TF.js kernels over the
;; whole [rows, vocab] logits (Max, Sub, Exp, Sum, RealDiv, each reading and writing 4.6 MB for the
;; lesson's batch). A module of its own because wasm-simd.wat is at the 4 KB that browsers compile
;; synchronously on the main thread; it imports that module's unary() for exp, so the exps are the
;; same function's, and the backend's memory, as wasm-simd.wat does.
;;
;; Every float operation is the one the stock kernels do, in the same order, so every output is the
;; same bits (test/softmax.test.ts): the library's Max (the first element, replaced by a greater
;; one or by a NaN), one subtraction per element, our exp, the library's Sum (from +0, each element
;; added in order) and one division per element.
;;
;; scripts/build-wasm.js compiles this file into wasm-softmax-binary.ts; softmax.ts uses it.
(module
  (import "env" "memory" (memory 1 65536 shared))
  (import "simd" "unary" (func $unary (param i32 i32 i32 i32)))

  ;; One row of `cols` floats at `in`: out = exp(in - max), where max is the library's Max of the
  ;; row. Returns in[target] - max.
  (func $shift_exp (param $in i32) (param $out i32) (param $cols i32) (param $target i32) (result f32)
    (local $j i32) (local $full i32) (local $end i32) (local $mv v128) (local $v v128) (local $nan v128)
    (local $m f32) (local $x f32)
    (local.set $end (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $full (i32.shl (i32.and (local.get $cols) (i32.const -4)) (i32.const 2)))
    ;; The largest value four lanes at a time, noting any NaN on the way.
    (local.set $m (f32.load (local.get $in)))
    (local.set $mv (f32x4.splat (local.get $m)))
    (block $d (loop $l1
      (br_if $d (i32.ge_u (local.get $j) (local.get $full)))
      (local.set $v (v128.load (i32.add (local.get $in) (local.get $j))))
      (local.set $mv (v128.bitselect (local.get $v) (local.get $mv) (f32x4.gt (local.get $v) (local.get $mv))))
      (local.set $nan (v128.or (local.get $nan) (f32x4.ne (local.get $v) (local.get $v))))
      (local.set $j (i32.add (local.get $j) (i32.const 16)))
      (br $l1)))
    (local.set $m (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mv)) (f32x4.extract_lane 1 (local.get $mv)))
                           (f32.max (f32x4.extract_lane 2 (local.get $mv)) (f32x4.extract_lane 3 (local.get $mv)))))
    (block $d2 (loop $l2
      (br_if $d2 (i32.ge_u (local.get $j) (local.get $end)))
      (local.set $x (f32.load (i32.add (local.get $in) (local.get $j))))
      (local.set $m (f32.max (local.get $m) (local.get $x)))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $l2)))
    ;; A NaN (here or in the tail, which f32.max passes on) or a zero maximum: the value is right
    ;; but not necessarily its bits. Then the library's rule, one element at a time: the first
    ;; element, replaced by a greater one or by any NaN (so the last NaN, or the first of the
    ;; largest: a zero maximum keeps the sign of the first zero).
    (if (i32.or (v128.any_true (local.get $nan))
          (i32.or (f32.ne (local.get $m) (local.get $m)) (f32.eq (local.get $m) (f32.const 0))))
      (then
        (local.set $m (f32.load (local.get $in)))
        (local.set $j (i32.const 0))
        (block $d3 (loop $l3
          (br_if $d3 (i32.ge_u (local.get $j) (local.get $end)))
          (local.set $x (f32.load (i32.add (local.get $in) (local.get $j))))
          (if (i32.or (f32.gt (local.get $x) (local.get $m)) (f32.ne (local.get $x) (local.get $x)))
            (then (local.set $m (local.get $x))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $l3)))))
    ;; shift
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $j (i32.const 0))
    (block $d4 (loop $l4
      (br_if $d4 (i32.ge_u (local.get $j) (local.get $full)))
      (v128.store (i32.add (local.get $out) (local.get $j)) (f32x4.sub (v128.load (i32.add (local.get $in) (local.get $j))) (local.get $mv)))
      (local.set $j (i32.add (local.get $j) (i32.const 16)))
      (br $l4)))
    (block $d5 (loop $l5
      (br_if $d5 (i32.ge_u (local.get $j) (local.get $end)))
      (f32.store (i32.add (local.get $out) (local.get $j)) (f32.sub (f32.load (i32.add (local.get $in) (local.get $j))) (local.get $m)))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $l5)))
    (local.set $x (f32.load (i32.add (local.get $out) (i32.shl (local.get $target) (i32.const 2)))))
    (call $unary (i32.const 0) (local.get $out) (local.get $out) (local.get $cols)) ;; 0: exp
    (local.get $x))
  ;; row[0, cols) /= s
  (func $divide (param $row i32) (param $cols i32) (param $s f32)
    (local $j i32) (local $full i32) (local $end i32) (local $sv v128)
    (local.set $end (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $full (i32.shl (i32.and (local.get $cols) (i32.const -4)) (i32.const 2)))
    (local.set $sv (f32x4.splat (local.get $s)))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $j) (local.get $full)))
      (v128.store (i32.add (local.get $row) (local.get $j)) (f32x4.div (v128.load (i32.add (local.get $row) (local.get $j))) (local.get $sv)))
      (local.set $j (i32.add (local.get $j) (i32.const 16)))
      (br $l)))
    (block $d2 (loop $l2
      (br_if $d2 (i32.ge_u (local.get $j) (local.get $end)))
      (f32.store (i32.add (local.get $row) (local.get $j)) (f32.div (f32.load (i32.add (local.get $row) (local.get $j))) (local.get $s)))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $l2))))
  ;; For each of `rows` rows of `cols` floats: probs = exp(x - max) / sum, sums[r] = sum (the row's
  ;; exps added in order from +0), picked[r] = x[ids[r]] - max. The caller checks that every id is
  ;; below cols. Four rows at a time: their sums are four independent chains of additions (each
  ;; still in its row's order), which the CPU overlaps; one chain at a time waits on every addition.
  (func (export "softmax") (param $in i32) (param $out i32) (param $ids i32) (param $picked i32) (param $sums i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $k i32) (local $n i32) (local $stride i32) (local $j i32) (local $p i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32)
    (local $s0 f32) (local $s1 f32) (local $s2 f32) (local $s3 f32)
    (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))
    (block $done (loop $group
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $n (i32.sub (local.get $rows) (local.get $r)))
      (if (i32.gt_u (local.get $n) (i32.const 4)) (then (local.set $n (i32.const 4))))
      (local.set $k (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $k) (local.get $n)))
        (local.set $p (i32.shl (i32.add (local.get $r) (local.get $k)) (i32.const 2)))
        (local.set $j (i32.mul (i32.add (local.get $r) (local.get $k)) (local.get $stride)))
        (f32.store (i32.add (local.get $picked) (local.get $p))
          (call $shift_exp (i32.add (local.get $in) (local.get $j)) (i32.add (local.get $out) (local.get $j))
            (local.get $cols) (i32.load (i32.add (local.get $ids) (local.get $p)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $l1)))
      ;; chain k sums row r + min(k, n - 1): a short group repeats its last row and keeps one sum of it
      (local.set $p0 (i32.add (local.get $out) (i32.mul (local.get $r) (local.get $stride))))
      (local.set $p1 (i32.add (local.get $p0) (select (local.get $stride) (i32.const 0) (i32.gt_u (local.get $n) (i32.const 1)))))
      (local.set $p2 (i32.add (local.get $p1) (select (local.get $stride) (i32.const 0) (i32.gt_u (local.get $n) (i32.const 2)))))
      (local.set $p3 (i32.add (local.get $p2) (select (local.get $stride) (i32.const 0) (i32.gt_u (local.get $n) (i32.const 3)))))
      (local.set $s0 (f32.const 0)) (local.set $s1 (f32.const 0)) (local.set $s2 (f32.const 0)) (local.set $s3 (f32.const 0))
      (local.set $j (i32.const 0))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $j) (local.get $stride)))
        (local.set $s0 (f32.add (local.get $s0) (f32.load (i32.add (local.get $p0) (local.get $j)))))
        (local.set $s1 (f32.add (local.get $s1) (f32.load (i32.add (local.get $p1) (local.get $j)))))
        (local.set $s2 (f32.add (local.get $s2) (f32.load (i32.add (local.get $p2) (local.get $j)))))
        (local.set $s3 (f32.add (local.get $s3) (f32.load (i32.add (local.get $p3) (local.get $j)))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $l2)))
      (local.set $p (i32.add (local.get $sums) (i32.shl (local.get $r) (i32.const 2))))
      (f32.store (local.get $p) (local.get $s0))
      (call $divide (local.get $p0) (local.get $cols) (local.get $s0))
      (if (i32.gt_u (local.get $n) (i32.const 1)) (then
        (f32.store offset=4 (local.get $p) (local.get $s1))
        (call $divide (local.get $p1) (local.get $cols) (local.get $s1))))
      (if (i32.gt_u (local.get $n) (i32.const 2)) (then
        (f32.store offset=8 (local.get $p) (local.get $s2))
        (call $divide (local.get $p2) (local.get $cols) (local.get $s2))))
      (if (i32.gt_u (local.get $n) (i32.const 3)) (then
        (f32.store offset=12 (local.get $p) (local.get $s3))
        (call $divide (local.get $p3) (local.get $cols) (local.get $s3))))
      (local.set $r (i32.add (local.get $r) (local.get $n)))
      (br $group))))
)
