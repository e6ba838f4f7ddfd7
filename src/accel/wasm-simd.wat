;; Kernels that tfjs-backend-wasm 4.22 runs one float at a time, written four floats at a time with
;; WebAssembly SIMD. The module works directly on the backend's own heap: it imports the backend's
;; memory, and every pointer below is a byte offset into it (a tensor's memoryOffset).
;;
;; scripts/build-wasm.js compiles this file into wasm-simd-binary.ts; wasm-kernels-simd.ts uses it.
;; Edit this file, then run `node scripts/build-wasm.js` (a test checks the two agree).
;;
;; The import is written for the multi-threaded backend, whose memory is shared; the build script
;; also makes a copy without `shared` for the single-threaded one. Everything here runs on the
;; calling (main) thread.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; out[i] = op(in[i]) for n floats; op: 0 exp, 1 sigmoid, 2 tanh (UNARY_OPS in wasm-kernels-simd.ts).
  ;; One loop, everything written out in it: V8 does not inline wasm calls, and a call per four
  ;; floats cost a third of the time. The last n % 4 go through the same code one at a time (a
  ;; float splat across the lanes), so where an element sits never changes its result.
  ;;
  ;; All three rest on exp (Cephes' expf): t = n ln2 + r with |r| <= ln2/2, exp(r) by its
  ;; polynomial, times 2^n applied in two halves so neither factor overflows the exponent field and a
  ;; subnormal result is rounded once. Within 1 ulp; NaN stays NaN, t > 88.73 gives Infinity and
  ;; t < -103.98 gives 0.
  ;;   sigmoid: 1 / (1 + e) for x >= 0, e / (1 + e) below, with e = exp(-|x|): e never overflows, so
  ;;            a very negative x still gets its tiny value rather than 0. Within 2 ulp.
  ;;   tanh:    Cephes' tanhf on |x|, x's sign put back at the end (tanh is odd; -0 stays -0): an odd
  ;;            polynomial below 0.625, where 1 - 2 / (exp(2|x|) + 1) would cancel, that above.
  ;;            Within 1 ulp.
  (func (export "unary") (param $op i32) (param $in i32) (param $out i32) (param $count i32)
    (local $i i32) (local $full i32) (local $end i32)
    (local $x v128) (local $a v128) (local $y v128) (local $z v128) (local $e v128)
    (local $t v128) (local $n v128) (local $r v128) (local $p v128) (local $ni v128) (local $half v128)
    (local.set $full (i32.shl (i32.and (local.get $count) (i32.const -4)) (i32.const 2)))
    (local.set $end (i32.shl (local.get $count) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $x (if (result v128) (i32.lt_u (local.get $i) (local.get $full))
        (then (v128.load (i32.add (local.get $in) (local.get $i))))
        (else (v128.load32_splat (i32.add (local.get $in) (local.get $i))))))
      (local.set $a (f32x4.abs (local.get $x)))
      ;; exp's argument: x, -|x| or 2|x|
      (local.set $t (if (result v128) (i32.eqz (local.get $op))
        (then (local.get $x))
        (else (if (result v128) (i32.eq (local.get $op) (i32.const 1))
          (then (f32x4.neg (local.get $a)))
          (else (f32x4.add (local.get $a) (local.get $a)))))))

      ;; ---- e = exp(t) ----
      ;; pmin/pmax are single instructions (min/max are not) and keep a NaN t, as t is their first
      ;; operand. The clamp keeps n within the exponent's reach.
      (local.set $t (f32x4.pmax (f32x4.pmin (local.get $t) (v128.const f32x4 88.8 88.8 88.8 88.8))
                                (v128.const f32x4 -104 -104 -104 -104)))
      ;; n = t log2(e) rounded to the nearest integer by adding 1.5 * 2^23: the sum's low mantissa
      ;; bits are then n itself (plus 0x4B400000), which is where $ni takes it from below.
      (local.set $e (f32x4.add
        (f32x4.mul (local.get $t)
          (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
        (v128.const f32x4 12582912 12582912 12582912 12582912)))
      (local.set $n (f32x4.sub (local.get $e) (v128.const f32x4 12582912 12582912 12582912 12582912)))
      (local.set $ni (i32x4.sub (local.get $e) (v128.const i32x4 0x4B400000 0x4B400000 0x4B400000 0x4B400000)))
      ;; r = t - n ln2 with ln2 in two parts; n * 0.693359375 is exact (few bits in each).
      (local.set $r (f32x4.sub (local.get $t)
        (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))))
      (local.set $r (f32x4.add (local.get $r)
        (f32x4.mul (local.get $n) (v128.const f32x4 2.12194440e-4 2.12194440e-4 2.12194440e-4 2.12194440e-4))))
      (local.set $p (f32x4.add
        (f32x4.mul (local.get $r) (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
        (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)))
      (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
        (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)))
      (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
        (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)))
      (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
        (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)))
      (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
        (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
      ;; exp(r) = 1 + r + p r^2
      (local.set $p (f32x4.add
        (f32x4.add (f32x4.mul (local.get $p) (f32x4.mul (local.get $r) (local.get $r))) (local.get $r))
        (v128.const f32x4 1 1 1 1)))
      ;; n in [-150, 129]: halves in [-75, 65], each a normal power of two (exponent bits n + 127).
      (local.set $half (i32x4.shr_s (local.get $ni) (i32.const 1)))
      (local.set $e (f32x4.mul
        (f32x4.mul (local.get $p)
          (i32x4.shl (i32x4.add (local.get $half) (v128.const i32x4 127 127 127 127)) (i32.const 23)))
        (i32x4.shl (i32x4.add (i32x4.sub (local.get $ni) (local.get $half)) (v128.const i32x4 127 127 127 127))
          (i32.const 23))))

      (local.set $y (if (result v128) (i32.eqz (local.get $op))
        (then (local.get $e))
        (else (if (result v128) (i32.eq (local.get $op) (i32.const 1))
          (then
            ;; sigmoid
            (local.set $z (f32x4.add (v128.const f32x4 1 1 1 1) (local.get $e)))
            (v128.bitselect
              (f32x4.div (local.get $e) (local.get $z))
              (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $z))
              (f32x4.lt (local.get $x) (v128.const f32x4 0 0 0 0))))
          (else
            ;; tanh: the polynomial on |x| ...
            (local.set $z (f32x4.mul (local.get $a) (local.get $a)))
            (local.set $p (f32x4.add
              (f32x4.mul (local.get $z) (v128.const f32x4 -5.70498872745e-3 -5.70498872745e-3 -5.70498872745e-3 -5.70498872745e-3))
              (v128.const f32x4 2.06390887954e-2 2.06390887954e-2 2.06390887954e-2 2.06390887954e-2)))
            (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $z))
              (v128.const f32x4 -5.37397155531e-2 -5.37397155531e-2 -5.37397155531e-2 -5.37397155531e-2)))
            (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $z))
              (v128.const f32x4 1.33314422036e-1 1.33314422036e-1 1.33314422036e-1 1.33314422036e-1)))
            (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $z))
              (v128.const f32x4 -3.33332819422e-1 -3.33332819422e-1 -3.33332819422e-1 -3.33332819422e-1)))
            (local.set $p (f32x4.add (f32x4.mul (f32x4.mul (local.get $p) (local.get $z)) (local.get $a))
              (local.get $a)))
            ;; ... or 1 - 2 / (exp(2|x|) + 1), then x's sign
            (v128.or
              (v128.bitselect
                (local.get $p)
                (f32x4.sub (v128.const f32x4 1 1 1 1)
                  (f32x4.div (v128.const f32x4 2 2 2 2) (f32x4.add (local.get $e) (v128.const f32x4 1 1 1 1))))
                (f32x4.lt (local.get $a) (v128.const f32x4 0.625 0.625 0.625 0.625)))
              (v128.and (local.get $x) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))))))))

      (if (i32.lt_u (local.get $i) (local.get $full))
        (then
          (v128.store (i32.add (local.get $out) (local.get $i)) (local.get $y))
          (local.set $i (i32.add (local.get $i) (i32.const 16))))
        (else
          (f32.store (i32.add (local.get $out) (local.get $i)) (f32x4.extract_lane 0 (local.get $y)))
          (local.set $i (i32.add (local.get $i) (i32.const 4)))))
      (br $next))))

  ;; The gradient of sigmoid or tanh from its output y, for n floats (a multiple of 4; the caller
  ;; does the rest): op 1 sigmoid dy (y (1 - y)), op 2 tanh (1 - y y) dy: tfjs-core's formulas, the
  ;; same float operations in the same order, in one pass instead of three kernels.
  (func (export "activation_grad") (param $op i32) (param $dy i32) (param $y i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32) (local $yv v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $yv (v128.load (i32.add (local.get $y) (local.get $i))))
      (v128.store (i32.add (local.get $out) (local.get $i))
        (if (result v128) (i32.eq (local.get $op) (i32.const 1))
          (then (f32x4.mul (v128.load (i32.add (local.get $dy) (local.get $i)))
                           (f32x4.mul (local.get $yv) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $yv)))))
          (else (f32x4.mul (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $yv) (local.get $yv)))
                           (v128.load (i32.add (local.get $dy) (local.get $i)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next))))

  ;; One Adam step of the first n - n % 4 of n weights (the caller does the last few), the float
  ;; operations of tf.train.adam's update in its order (AdamUpdateAttrs in src/core/optimizer.ts
  ;; names the scalars), in one pass instead of 14:
  ;;   m' = m b1 + g (1 - b1)             v' = v b2 + g g (1 - b2)
  ;;   w' = (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps) * -lr + w
  ;; Written out in the loop, not called: V8 does not inline wasm calls, and a call per four
  ;; floats cost more than the arithmetic.
  (func (export "adam") (param $g i32) (param $m i32) (param $v i32) (param $w i32)
                        (param $m_out i32) (param $v_out i32) (param $w_out i32) (param $n i32)
                        (param $b1 f32) (param $c1 f32) (param $b2 f32) (param $c2 f32)
                        (param $d1 f32) (param $d2 f32) (param $eps f32) (param $neg_lr f32)
    (local $i i32) (local $end i32) (local $gv v128) (local $mv v128) (local $vv v128)
    (local $B1 v128) (local $C1 v128) (local $B2 v128) (local $C2 v128)
    (local $D1 v128) (local $D2 v128) (local $EPS v128) (local $NEG_LR v128)
    (local.set $B1 (f32x4.splat (local.get $b1)))
    (local.set $C1 (f32x4.splat (local.get $c1)))
    (local.set $B2 (f32x4.splat (local.get $b2)))
    (local.set $C2 (f32x4.splat (local.get $c2)))
    (local.set $D1 (f32x4.splat (local.get $d1)))
    (local.set $D2 (f32x4.splat (local.get $d2)))
    (local.set $EPS (f32x4.splat (local.get $eps)))
    (local.set $NEG_LR (f32x4.splat (local.get $neg_lr)))
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $gv (v128.load (i32.add (local.get $g) (local.get $i))))
      (local.set $mv (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $i))) (local.get $B1))
                                (f32x4.mul (local.get $gv) (local.get $C1))))
      (local.set $vv (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $i))) (local.get $B2))
                                (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (local.get $C2))))
      (v128.store (i32.add (local.get $m_out) (local.get $i)) (local.get $mv))
      (v128.store (i32.add (local.get $v_out) (local.get $i)) (local.get $vv))
      (v128.store (i32.add (local.get $w_out) (local.get $i))
        (f32x4.add
          (f32x4.mul
            (f32x4.div (f32x4.div (local.get $mv) (local.get $D1))
                       (f32x4.add (f32x4.sqrt (f32x4.div (local.get $vv) (local.get $D2))) (local.get $EPS)))
            (local.get $NEG_LR))
          (v128.load (i32.add (local.get $w) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next))))

  ;; The column of the one 1 in a row of n floats that are all 0 or 1 (-0 counts as 0); -1 for a row
  ;; of zeros, -2 if the row is not like that (another value, or a second 1). Four floats at a time
  ;; while they are all 0, which is nearly always; one at a time otherwise and for the last n % 4.
  (func (export "hot_column") (param $row i32) (param $n i32) (result i32)
    (local $i i32) (local $end i32) (local $hot i32) (local $v f32)
    (local.set $hot (i32.const -1))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      ;; four zeros at once, where four floats remain
      (if (i32.le_u (i32.add (local.get $i) (i32.const 16)) (local.get $end))
        (then (if (i32.eqz (v128.any_true (f32x4.ne (v128.load (i32.add (local.get $row) (local.get $i)))
                                                    (v128.const f32x4 0 0 0 0))))
          (then
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $next)))))
      (local.set $v (f32.load (i32.add (local.get $row) (local.get $i))))
      (if (f32.ne (local.get $v) (f32.const 0))
        (then
          (if (i32.or (f32.ne (local.get $v) (f32.const 1)) (i32.ge_s (local.get $hot) (i32.const 0)))
            (then (return (i32.const -2))))
          (local.set $hot (i32.shr_u (local.get $i) (i32.const 2)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next)))
    (local.get $hot))

  ;; dst[j] += src[j] for n floats: one row of a scatter-add, or of a sum over rows.
  (func (export "add_into") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store (i32.add (local.get $dst) (local.get $i))
        (f32x4.add (v128.load (i32.add (local.get $dst) (local.get $i))) (v128.load (i32.add (local.get $src) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (f32.store (i32.add (local.get $dst) (local.get $i))
        (f32.add (f32.load (i32.add (local.get $dst) (local.get $i))) (f32.load (i32.add (local.get $src) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; out[j] += x[k] * w[k][j] for k = 0 .. K-1 in that order, j < N: a row vector times a row-major
  ;; [K, N] matrix, added into out (which holds 0 or the bias). The wasm library's matmul (XNNPACK's
  ;; f32 GEMM) adds the products of each output in the same order, one rounded multiply and one
  ;; rounded add each, starting from 0 or the bias: so the same floats, bit for bit (tested). Rows
  ;; four at a time, so out is loaded and stored once per four products; the last N % 4 columns and
  ;; the last K % 4 rows through the same arithmetic one float at a time.
  (func (export "gemv") (param $x i32) (param $w i32) (param $out i32) (param $K i32) (param $N i32)
    (local $k i32) (local $j i32) (local $rowBytes i32) (local $vecEnd i32) (local $end i32) (local $rows i32)
    (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32)
    (local $x0 f32) (local $x1 f32) (local $x2 f32) (local $x3 f32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $acc v128) (local $s f32)
    (local.set $rowBytes (i32.shl (local.get $N) (i32.const 2)))
    (local.set $end (local.get $rowBytes))
    (local.set $vecEnd (i32.shl (i32.and (local.get $N) (i32.const -4)) (i32.const 2)))
    (local.set $rows (i32.and (local.get $K) (i32.const -4)))
    ;; four rows at a time
    (block $done (loop $block
      (br_if $done (i32.ge_u (local.get $k) (local.get $rows)))
      (local.set $r0 (i32.add (local.get $w) (i32.mul (local.get $k) (local.get $rowBytes))))
      (local.set $r1 (i32.add (local.get $r0) (local.get $rowBytes)))
      (local.set $r2 (i32.add (local.get $r1) (local.get $rowBytes)))
      (local.set $r3 (i32.add (local.get $r2) (local.get $rowBytes)))
      (local.set $x0 (f32.load (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $x1 (f32.load offset=4 (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $x2 (f32.load offset=8 (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $x3 (f32.load offset=12 (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $v0 (f32x4.splat (local.get $x0)))
      (local.set $v1 (f32x4.splat (local.get $x1)))
      (local.set $v2 (f32x4.splat (local.get $x2)))
      (local.set $v3 (f32x4.splat (local.get $x3)))
      (local.set $j (i32.const 0))
      (block $vdone (loop $vnext
        (br_if $vdone (i32.ge_u (local.get $j) (local.get $vecEnd)))
        (local.set $acc (v128.load (i32.add (local.get $out) (local.get $j))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v0) (v128.load (i32.add (local.get $r0) (local.get $j))))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v1) (v128.load (i32.add (local.get $r1) (local.get $j))))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v2) (v128.load (i32.add (local.get $r2) (local.get $j))))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $v3) (v128.load (i32.add (local.get $r3) (local.get $j))))))
        (v128.store (i32.add (local.get $out) (local.get $j)) (local.get $acc))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $vnext)))
      (block $sdone (loop $snext
        (br_if $sdone (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $s (f32.load (i32.add (local.get $out) (local.get $j))))
        (local.set $s (f32.add (local.get $s) (f32.mul (local.get $x0) (f32.load (i32.add (local.get $r0) (local.get $j))))))
        (local.set $s (f32.add (local.get $s) (f32.mul (local.get $x1) (f32.load (i32.add (local.get $r1) (local.get $j))))))
        (local.set $s (f32.add (local.get $s) (f32.mul (local.get $x2) (f32.load (i32.add (local.get $r2) (local.get $j))))))
        (local.set $s (f32.add (local.get $s) (f32.mul (local.get $x3) (f32.load (i32.add (local.get $r3) (local.get $j))))))
        (f32.store (i32.add (local.get $out) (local.get $j)) (local.get $s))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $snext)))
      (local.set $k (i32.add (local.get $k) (i32.const 4)))
      (br $block)))
    ;; the last K % 4 rows, one at a time
    (block $done (loop $row
      (br_if $done (i32.ge_u (local.get $k) (local.get $K)))
      (local.set $r0 (i32.add (local.get $w) (i32.mul (local.get $k) (local.get $rowBytes))))
      (local.set $x0 (f32.load (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $v0 (f32x4.splat (local.get $x0)))
      (local.set $j (i32.const 0))
      (block $vdone (loop $vnext
        (br_if $vdone (i32.ge_u (local.get $j) (local.get $vecEnd)))
        (v128.store (i32.add (local.get $out) (local.get $j))
          (f32x4.add (v128.load (i32.add (local.get $out) (local.get $j)))
                     (f32x4.mul (local.get $v0) (v128.load (i32.add (local.get $r0) (local.get $j))))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $vnext)))
      (block $sdone (loop $snext
        (br_if $sdone (i32.ge_u (local.get $j) (local.get $end)))
        (f32.store (i32.add (local.get $out) (local.get $j))
          (f32.add (f32.load (i32.add (local.get $out) (local.get $j)))
                   (f32.mul (local.get $x0) (f32.load (i32.add (local.get $r0) (local.get $j))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $snext)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $row)))
  )

  ;; out[i] = a[i] op b[i mod bn] for i < n, where bn divides n: op 0 a + b, 1 a - b, 2 a * b, 3 b - a
  ;; (a subtraction with the smaller operand first), 4 -a (b unused; the sign bit flipped, as Neg). bn = n is two tensors of one shape; a smaller bn
  ;; is b repeated along a's leading axes (a bias added to every row); bn = 1 a scalar. Each element
  ;; is one rounded float operation, as the library's (XNNPACK's) is: the same bits, on the calling
  ;; thread, so a [32, 256] operation costs no wake-up of the library's worker threads.
  (func (export "binary") (param $op i32) (param $a i32) (param $b i32) (param $out i32) (param $n i32) (param $bn i32)
    (local $row i32) (local $total i32) (local $rowBytes i32) (local $vecEnd i32) (local $j i32)
    (local $x v128) (local $y v128) (local $r v128) (local $s f32) (local $t f32)
    (local.set $total (i32.shl (local.get $n) (i32.const 2)))
    ;; a scalar b: one row of n floats, b splat across the lanes
    (local.set $rowBytes (if (result i32) (i32.eq (local.get $bn) (i32.const 1))
      (then (local.get $total)) (else (i32.shl (local.get $bn) (i32.const 2)))))
    (local.set $vecEnd (i32.and (local.get $rowBytes) (i32.const -16)))
    (block $rowsDone (loop $nextRow
      (br_if $rowsDone (i32.ge_u (local.get $row) (local.get $total)))
      (local.set $j (i32.const 0))
      (block $vdone (loop $vnext
        (br_if $vdone (i32.ge_u (local.get $j) (local.get $vecEnd)))
        (local.set $x (v128.load (i32.add (i32.add (local.get $a) (local.get $row)) (local.get $j))))
        (local.set $y (if (result v128) (i32.eq (local.get $bn) (i32.const 1))
          (then (v128.load32_splat (local.get $b)))
          (else (v128.load (i32.add (local.get $b) (local.get $j))))))
        (local.set $r (if (result v128) (i32.eqz (local.get $op))
          (then (f32x4.add (local.get $x) (local.get $y)))
          (else (if (result v128) (i32.eq (local.get $op) (i32.const 1))
            (then (f32x4.sub (local.get $x) (local.get $y)))
            (else (if (result v128) (i32.eq (local.get $op) (i32.const 2))
              (then (f32x4.mul (local.get $x) (local.get $y)))
              (else (if (result v128) (i32.eq (local.get $op) (i32.const 3))
                (then (f32x4.sub (local.get $y) (local.get $x)))
                (else (f32x4.neg (local.get $x)))))))))))
        (v128.store (i32.add (i32.add (local.get $out) (local.get $row)) (local.get $j)) (local.get $r))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $vnext)))
      (block $sdone (loop $snext
        (br_if $sdone (i32.ge_u (local.get $j) (local.get $rowBytes)))
        (local.set $s (f32.load (i32.add (i32.add (local.get $a) (local.get $row)) (local.get $j))))
        (local.set $t (if (result f32) (i32.eq (local.get $bn) (i32.const 1))
          (then (f32.load (local.get $b)))
          (else (f32.load (i32.add (local.get $b) (local.get $j))))))
        (f32.store (i32.add (i32.add (local.get $out) (local.get $row)) (local.get $j))
          (if (result f32) (i32.eqz (local.get $op))
            (then (f32.add (local.get $s) (local.get $t)))
            (else (if (result f32) (i32.eq (local.get $op) (i32.const 1))
              (then (f32.sub (local.get $s) (local.get $t)))
              (else (if (result f32) (i32.eq (local.get $op) (i32.const 2))
                (then (f32.mul (local.get $s) (local.get $t)))
                (else (if (result f32) (i32.eq (local.get $op) (i32.const 3))
                  (then (f32.sub (local.get $t) (local.get $s)))
                  (else (f32.neg (local.get $s)))))))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $snext)))
      (local.set $row (i32.add (local.get $row) (local.get $rowBytes)))
      (br $nextRow))))

  ;; The backward pass of an LSTM step's gates (lstm-cell.ts), for `rows` rows of H units, H a
  ;; multiple of 4: from dh and dc (the gradients reaching H and C), C_prev, and the gates I, F, C̃, O
  ;; and tanh(C) saved by the forward pass (five [rows, H] blocks at $s), it writes dz ([rows, 4H], the
  ;; gates side by side as tf.layers' kernel has them) and dC_prev. The float operations are the ones
  ;; tfjs-core's tape runs over tf.layers' LSTMCell, in the same order within each:
  ;;   dO = dh tanh(C)            dT = dh O                  dC' = dc + (1 - T T) dT
  ;;   dF = dC' C_prev            dC_prev = dC' F            dI = dC' C̃        dC̃ = dC' I
  ;;   dz = [dI (I (1 - I)), dF (F (1 - F)), (1 - C̃ C̃) dC̃, dO (O (1 - O))]
  ;; (Multiply's gradient dy·b and dy·a, Tanh's (1 - y·y)·dy, Sigmoid's dy·(y·(1 - y))): the same bits.
  (func (export "lstm_grad") (param $dh i32) (param $dc i32) (param $cp i32) (param $s i32) (param $dz i32) (param $dcp i32)
    (param $rows i32) (param $H i32)
    (local $block i32) (local $row i32) (local $j i32) (local $rowBytes i32) (local $e i32) (local $z i32)
    (local $vi v128) (local $vf v128) (local $vg v128) (local $vo v128) (local $vt v128) (local $vdh v128)
    (local $dct v128) (local $do v128) (local $one v128)
    (local.set $one (v128.const f32x4 1 1 1 1))
    (local.set $rowBytes (i32.shl (local.get $H) (i32.const 2)))
    (local.set $block (i32.mul (local.get $rows) (local.get $rowBytes)))
    (block $rowsDone (loop $nextRow
      (br_if $rowsDone (i32.ge_u (local.get $row) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $rowBytes)))
        ;; $e: this element's byte offset in a [rows, H] block; $z: in dz's row, gate I
        (local.set $e (i32.add (i32.mul (local.get $row) (local.get $rowBytes)) (local.get $j)))
        (local.set $z (i32.add (local.get $dz) (i32.add (i32.shl (i32.mul (local.get $row) (local.get $rowBytes)) (i32.const 2)) (local.get $j))))
        (local.set $vi (v128.load (i32.add (local.get $s) (local.get $e))))
        (local.set $vf (v128.load (i32.add (i32.add (local.get $s) (local.get $block)) (local.get $e))))
        (local.set $vg (v128.load (i32.add (i32.add (local.get $s) (i32.shl (local.get $block) (i32.const 1))) (local.get $e))))
        (local.set $vo (v128.load (i32.add (i32.add (local.get $s) (i32.mul (local.get $block) (i32.const 3))) (local.get $e))))
        (local.set $vt (v128.load (i32.add (i32.add (local.get $s) (i32.shl (local.get $block) (i32.const 2))) (local.get $e))))
        (local.set $vdh (v128.load (i32.add (local.get $dh) (local.get $e))))
        (local.set $do (f32x4.mul (local.get $vdh) (local.get $vt)))
        (local.set $dct (f32x4.add (v128.load (i32.add (local.get $dc) (local.get $e)))
          (f32x4.mul (f32x4.sub (local.get $one) (f32x4.mul (local.get $vt) (local.get $vt)))
                     (f32x4.mul (local.get $vdh) (local.get $vo)))))
        (v128.store (i32.add (local.get $dcp) (local.get $e)) (f32x4.mul (local.get $dct) (local.get $vf)))
        ;; dz's four gates, H floats apart
        (v128.store (local.get $z)
          (f32x4.mul (f32x4.mul (local.get $dct) (local.get $vg))
                     (f32x4.mul (local.get $vi) (f32x4.sub (local.get $one) (local.get $vi)))))
        (v128.store (i32.add (local.get $z) (local.get $rowBytes))
          (f32x4.mul (f32x4.mul (local.get $dct) (v128.load (i32.add (local.get $cp) (local.get $e))))
                     (f32x4.mul (local.get $vf) (f32x4.sub (local.get $one) (local.get $vf)))))
        (v128.store (i32.add (local.get $z) (i32.shl (local.get $rowBytes) (i32.const 1)))
          (f32x4.mul (f32x4.sub (local.get $one) (f32x4.mul (local.get $vg) (local.get $vg)))
                     (f32x4.mul (local.get $dct) (local.get $vi))))
        (v128.store (i32.add (local.get $z) (i32.mul (local.get $rowBytes) (i32.const 3)))
          (f32x4.mul (local.get $do)
                     (f32x4.mul (local.get $vo) (f32x4.sub (local.get $one) (local.get $vo)))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $next)))
      (local.set $row (i32.add (local.get $row) (i32.const 1)))
      (br $nextRow))))

  ;; out[i] = float(in[i]) for n int32s, rounded to nearest as the library's Cast (a typed array
  ;; copy, which rounds so too) does: the same bits, four at a time.
  (func (export "i32_to_f32") (param $in i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store (i32.add (local.get $out) (local.get $i)) (f32x4.convert_i32x4_s (v128.load (i32.add (local.get $in) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (f32.store (i32.add (local.get $out) (local.get $i)) (f32.convert_i32_s (i32.load (i32.add (local.get $in) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; out[j] = a[j] * b[j] for n floats (the last n % 4 one at a time, the same float operation).
  (func (export "mul") (param $a i32) (param $b i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store (i32.add (local.get $out) (local.get $i)) (f32x4.mul (v128.load (i32.add (local.get $a) (local.get $i))) (v128.load (i32.add (local.get $b) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (f32.store (i32.add (local.get $out) (local.get $i)) (f32.mul (f32.load (i32.add (local.get $a) (local.get $i))) (f32.load (i32.add (local.get $b) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; out[j] = a[j] * b[j] + c[j] * d[j]: the LSTM's C = F ⊙ C + I ⊙ C̃, each product and the sum rounded.
  (func (export "mul_add") (param $a i32) (param $b i32) (param $c i32) (param $d i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store (i32.add (local.get $out) (local.get $i)) (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $a) (local.get $i))) (v128.load (i32.add (local.get $b) (local.get $i)))) (f32x4.mul (v128.load (i32.add (local.get $c) (local.get $i))) (v128.load (i32.add (local.get $d) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (f32.store (i32.add (local.get $out) (local.get $i)) (f32.add (f32.mul (f32.load (i32.add (local.get $a) (local.get $i))) (f32.load (i32.add (local.get $b) (local.get $i)))) (f32.mul (f32.load (i32.add (local.get $c) (local.get $i))) (f32.load (i32.add (local.get $d) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; out[j] = z[j] * h[j] + (1 - z[j]) * c[j]: the GRU's H = Z ⊙ H + (1 − Z) ⊙ H̃, each step rounded.
  (func (export "gru_mix") (param $z i32) (param $h i32) (param $c i32) (param $out i32) (param $n i32)
    (local $i i32) (local $end i32)
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store (i32.add (local.get $out) (local.get $i)) (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $z) (local.get $i))) (v128.load (i32.add (local.get $h) (local.get $i)))) (f32x4.mul (f32x4.sub (v128.const f32x4 1 1 1 1) (v128.load (i32.add (local.get $z) (local.get $i)))) (v128.load (i32.add (local.get $c) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $next)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (f32.store (i32.add (local.get $out) (local.get $i)) (f32.add (f32.mul (f32.load (i32.add (local.get $z) (local.get $i))) (f32.load (i32.add (local.get $h) (local.get $i)))) (f32.mul (f32.sub (f32.const 1) (f32.load (i32.add (local.get $z) (local.get $i)))) (f32.load (i32.add (local.get $c) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))

  ;; The index of the first largest of n floats (a NaN is never larger), as the library's ArgMax.
  (func (export "argmax") (param $x i32) (param $n i32) (result i32)
    (local $i i32) (local $best i32) (local $max f32) (local $v f32)
    (local.set $max (f32.load (local.get $x)))
    (local.set $i (i32.const 1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $v (f32.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2)))))
      (if (f32.gt (local.get $v) (local.get $max))
        (then (local.set $max (local.get $v)) (local.set $best (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $best))
)
