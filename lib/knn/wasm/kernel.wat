;; cairn's WebAssembly SIMD kNN kernel: approximate dot products of a tile of
;; query rows against a run of reference rows, with the candidate filter
;; fused into the tile loop.
;;
;; Rebuild the bytes with `deno run -A scripts/build_wasm.ts` after editing.
;; The build makes two variants from this one source: "relaxed" keeps
;; f32x4.relaxed_madd, "simd" rewrites each
;; (f32x4.relaxed_madd (local.get $x) (local.get $y) (local.get $acc))
;; to (f32x4.add (f32x4.mul ...) ...), so keep that exact form.
;;
;; Layout (all pointers are byte offsets into the imported shared memory):
;; - references in groups of 8 rows, column-interleaved: group g holds, for
;;   column t = 0..d-1, the 8 values y[8g+0..7][t] (32 bytes per column);
;;   rows past the end are zero;
;; - queries in groups of 4 (scan) or 6 (scan6) rows, the same way;
;; - qlo[i] = qadd - qslack per query, thr[i] per query, rlo[r] = radd -
;;   rslack per reference (f64);
;; - tmp: 192 bytes of scratch; out: 16-byte records (i32 query, i32 ref,
;;   f64 dot).
;;
;; For each pair the kernel computes the lower bound
;;   lower = (qlo[i] + rlo[r]) - mult * dot
;; in float64 and emits (i, r, dot) when lower <= thr[i]. Register tile:
;; 4 queries x 8 references = 8 f32x4 accumulators in "scan" (queries packed
;; in groups of 4), 6 x 8 = 12 in "scan6" (groups of 6). Which is faster
;; depends on the engine: more accumulators hide fused multiply-add latency
;; but spill more registers (kernel_wasm.ts picks).
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; scan(q, nq, ref, r0, nr, d, qlo, thr, rlo, mult, tmp, out) -> count
  ;; q: the packed query tile (nq rows, padded to a multiple of 4);
  ;; ref: the group holding reference row r0 (r0 a multiple of 8);
  ;; nr: reference rows in this call; qlo/thr: indexed by tile row;
  ;; rlo: indexed by global reference row.
  (func (export "scan")
    (param $q i32) (param $nq i32) (param $ref i32) (param $r0 i32) (param $nr i32) (param $d i32)
    (param $qlo i32) (param $thr i32) (param $rlo i32) (param $mult f64) (param $tmp i32) (param $out i32)
    (result i32)
    (local $i i32) (local $j i32) (local $end i32) (local $qp i32) (local $rp0 i32) 
    (local $rowq i32) (local $rowr8 i32) (local $n i32) (local $k i32) (local $kmax i32) (local $l i32)
    (local $x v128) (local $y0 v128) (local $y1 v128)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128) (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128)
    (local $m v128) (local $th v128) (local $f v128) (local $qv v128)
    (local $s f64) (local $dot f64)
    (local.set $rowq (i32.shl (local.get $d) (i32.const 2)))
    (local.set $rowr8 (i32.shl (local.get $d) (i32.const 5)))
    (local.set $m (f64x2.splat (local.get $mult)))
    (local.set $i (i32.const 0))
    (block $qdone (loop $qloop
      (br_if $qdone (i32.ge_u (local.get $i) (local.get $nq)))
      (local.set $kmax (i32.sub (local.get $nq) (local.get $i)))
      (if (i32.gt_u (local.get $kmax) (i32.const 4)) (then (local.set $kmax (i32.const 4))))
      (local.set $j (i32.const 0))
      (block $rdone (loop $rloop
        (br_if $rdone (i32.ge_u (local.get $j) (local.get $nr)))
        (local.set $rp0 (i32.add (local.get $ref) (i32.mul (i32.shr_u (local.get $j) (i32.const 3)) (local.get $rowr8))))
        (local.set $qp (i32.add (local.get $q) (i32.mul (local.get $i) (local.get $rowq))))
        (local.set $a00 (v128.const i64x2 0 0))
        (local.set $a01 (v128.const i64x2 0 0))
        (local.set $a10 (v128.const i64x2 0 0))
        (local.set $a11 (v128.const i64x2 0 0))
        (local.set $a20 (v128.const i64x2 0 0))
        (local.set $a21 (v128.const i64x2 0 0))
        (local.set $a30 (v128.const i64x2 0 0))
        (local.set $a31 (v128.const i64x2 0 0))
        (local.set $end (i32.add (local.get $rp0) (local.get $rowr8)))
        (loop $tloop
          (local.set $y0 (v128.load offset=0 (local.get $rp0)))
          (local.set $y1 (v128.load offset=16 (local.get $rp0)))
          (local.set $x (v128.load32_splat offset=0 (local.get $qp)))
          (local.set $a00 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a00)))
          (local.set $a01 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a01)))
          (local.set $x (v128.load32_splat offset=4 (local.get $qp)))
          (local.set $a10 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a10)))
          (local.set $a11 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a11)))
          (local.set $x (v128.load32_splat offset=8 (local.get $qp)))
          (local.set $a20 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a20)))
          (local.set $a21 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a21)))
          (local.set $x (v128.load32_splat offset=12 (local.get $qp)))
          (local.set $a30 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a30)))
          (local.set $a31 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a31)))
          (local.set $qp (i32.add (local.get $qp) (i32.const 16)))
          (local.set $rp0 (i32.add (local.get $rp0) (i32.const 32)))
          (br_if $tloop (i32.lt_u (local.get $rp0) (local.get $end))))
        (v128.store offset=0 (local.get $tmp) (local.get $a00))
        (v128.store offset=16 (local.get $tmp) (local.get $a01))
        (v128.store offset=32 (local.get $tmp) (local.get $a10))
        (v128.store offset=48 (local.get $tmp) (local.get $a11))
        (v128.store offset=64 (local.get $tmp) (local.get $a20))
        (v128.store offset=80 (local.get $tmp) (local.get $a21))
        (v128.store offset=96 (local.get $tmp) (local.get $a30))
        (v128.store offset=112 (local.get $tmp) (local.get $a31))
        (local.set $k (i32.const 0))
        (loop $kloop
          (local.set $qv (f64x2.splat (f64.load (i32.add (local.get $qlo) (i32.shl (i32.add (local.get $i) (local.get $k)) (i32.const 3))))))
          (local.set $th (f64x2.splat (f64.load (i32.add (local.get $thr) (i32.shl (i32.add (local.get $i) (local.get $k)) (i32.const 3))))))
          ;; lanes 0-1, 2-3, 4-5, 6-7
          (local.set $f (v128.or (v128.or
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=0 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=0 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th))
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=16 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th)))
           (v128.or
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=32 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=16 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th))
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=48 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=24 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th)))))
          (if (v128.any_true (local.get $f)) (then
            (local.set $l (i32.const 0))
            (loop $lloop
              (if (i32.lt_u (i32.add (local.get $j) (local.get $l)) (local.get $nr)) (then
                (local.set $dot (f64.promote_f32 (f32.load (i32.add (local.get $tmp) (i32.add (i32.shl (local.get $k) (i32.const 5)) (i32.shl (local.get $l) (i32.const 2)))))))
                (local.set $s (f64.sub (f64.add (f64x2.extract_lane 0 (local.get $qv))
                    (f64.load (i32.add (local.get $rlo) (i32.shl (i32.add (i32.add (local.get $r0) (local.get $j)) (local.get $l)) (i32.const 3)))))
                  (f64.mul (local.get $mult) (local.get $dot))))
                (if (f64.le (local.get $s) (f64x2.extract_lane 0 (local.get $th))) (then
                  (i32.store offset=0 (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 4))) (i32.add (local.get $i) (local.get $k)))
                  (i32.store offset=4 (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 4))) (i32.add (i32.add (local.get $r0) (local.get $j)) (local.get $l)))
                  (f64.store offset=8 (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 4))) (local.get $dot))
                  (local.set $n (i32.add (local.get $n) (i32.const 1)))))))
              (local.set $l (i32.add (local.get $l) (i32.const 1)))
              (br_if $lloop (i32.lt_u (local.get $l) (i32.const 8))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $kloop (i32.lt_u (local.get $k) (local.get $kmax))))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (br $rloop)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $qloop)))
    (local.get $n))

  ;; scan6: the same contract with 6 queries per register tile.
  (func (export "scan6")
    (param $q i32) (param $nq i32) (param $ref i32) (param $r0 i32) (param $nr i32) (param $d i32)
    (param $qlo i32) (param $thr i32) (param $rlo i32) (param $mult f64) (param $tmp i32) (param $out i32)
    (result i32)
    (local $i i32) (local $j i32) (local $end i32) (local $qp i32) (local $rp0 i32)
    (local $rowq i32) (local $rowr8 i32) (local $n i32) (local $k i32) (local $kmax i32) (local $l i32)
    (local $x v128) (local $y0 v128) (local $y1 v128)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128) (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128) (local $a40 v128) (local $a41 v128) (local $a50 v128) (local $a51 v128)
    (local $m v128) (local $th v128) (local $f v128) (local $qv v128)
    (local $s f64) (local $dot f64)
    (local.set $rowq (i32.shl (local.get $d) (i32.const 2)))
    (local.set $rowr8 (i32.shl (local.get $d) (i32.const 5)))
    (local.set $m (f64x2.splat (local.get $mult)))
    (local.set $i (i32.const 0))
    (block $qdone (loop $qloop
      (br_if $qdone (i32.ge_u (local.get $i) (local.get $nq)))
      (local.set $kmax (i32.sub (local.get $nq) (local.get $i)))
      (if (i32.gt_u (local.get $kmax) (i32.const 6)) (then (local.set $kmax (i32.const 6))))
      (local.set $j (i32.const 0))
      (block $rdone (loop $rloop
        (br_if $rdone (i32.ge_u (local.get $j) (local.get $nr)))
        (local.set $rp0 (i32.add (local.get $ref) (i32.mul (i32.shr_u (local.get $j) (i32.const 3)) (local.get $rowr8))))
        (local.set $qp (i32.add (local.get $q) (i32.mul (local.get $i) (local.get $rowq))))
        (local.set $a00 (v128.const i64x2 0 0))
        (local.set $a01 (v128.const i64x2 0 0))
        (local.set $a10 (v128.const i64x2 0 0))
        (local.set $a11 (v128.const i64x2 0 0))
        (local.set $a20 (v128.const i64x2 0 0))
        (local.set $a21 (v128.const i64x2 0 0))
        (local.set $a30 (v128.const i64x2 0 0))
        (local.set $a31 (v128.const i64x2 0 0))
        (local.set $a40 (v128.const i64x2 0 0))
        (local.set $a41 (v128.const i64x2 0 0))
        (local.set $a50 (v128.const i64x2 0 0))
        (local.set $a51 (v128.const i64x2 0 0))
        (local.set $end (i32.add (local.get $rp0) (local.get $rowr8)))
        (loop $tloop
          (local.set $y0 (v128.load offset=0 (local.get $rp0)))
          (local.set $y1 (v128.load offset=16 (local.get $rp0)))
          (local.set $x (v128.load32_splat offset=0 (local.get $qp)))
          (local.set $a00 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a00)))
          (local.set $a01 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a01)))
          (local.set $x (v128.load32_splat offset=4 (local.get $qp)))
          (local.set $a10 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a10)))
          (local.set $a11 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a11)))
          (local.set $x (v128.load32_splat offset=8 (local.get $qp)))
          (local.set $a20 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a20)))
          (local.set $a21 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a21)))
          (local.set $x (v128.load32_splat offset=12 (local.get $qp)))
          (local.set $a30 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a30)))
          (local.set $a31 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a31)))
          (local.set $x (v128.load32_splat offset=16 (local.get $qp)))
          (local.set $a40 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a40)))
          (local.set $a41 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a41)))
          (local.set $x (v128.load32_splat offset=20 (local.get $qp)))
          (local.set $a50 (f32x4.relaxed_madd (local.get $x) (local.get $y0) (local.get $a50)))
          (local.set $a51 (f32x4.relaxed_madd (local.get $x) (local.get $y1) (local.get $a51)))
          (local.set $qp (i32.add (local.get $qp) (i32.const 24)))
          (local.set $rp0 (i32.add (local.get $rp0) (i32.const 32)))
          (br_if $tloop (i32.lt_u (local.get $rp0) (local.get $end))))
        (v128.store offset=0 (local.get $tmp) (local.get $a00))
        (v128.store offset=16 (local.get $tmp) (local.get $a01))
        (v128.store offset=32 (local.get $tmp) (local.get $a10))
        (v128.store offset=48 (local.get $tmp) (local.get $a11))
        (v128.store offset=64 (local.get $tmp) (local.get $a20))
        (v128.store offset=80 (local.get $tmp) (local.get $a21))
        (v128.store offset=96 (local.get $tmp) (local.get $a30))
        (v128.store offset=112 (local.get $tmp) (local.get $a31))
        (v128.store offset=128 (local.get $tmp) (local.get $a40))
        (v128.store offset=144 (local.get $tmp) (local.get $a41))
        (v128.store offset=160 (local.get $tmp) (local.get $a50))
        (v128.store offset=176 (local.get $tmp) (local.get $a51))
        (local.set $k (i32.const 0))
        (loop $kloop
          (local.set $qv (f64x2.splat (f64.load (i32.add (local.get $qlo) (i32.shl (i32.add (local.get $i) (local.get $k)) (i32.const 3))))))
          (local.set $th (f64x2.splat (f64.load (i32.add (local.get $thr) (i32.shl (i32.add (local.get $i) (local.get $k)) (i32.const 3))))))
          ;; lanes 0-1, 2-3, 4-5, 6-7
          (local.set $f (v128.or (v128.or
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=0 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=0 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th))
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=16 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th)))
           (v128.or
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=32 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=16 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th))
            (f64x2.le (f64x2.sub (f64x2.add (local.get $qv) (v128.load offset=48 (i32.add (local.get $rlo) (i32.shl (i32.add (local.get $r0) (local.get $j)) (i32.const 3)))))
                (f64x2.mul (local.get $m) (f64x2.promote_low_f32x4 (v128.load64_zero offset=24 (i32.add (local.get $tmp) (i32.shl (local.get $k) (i32.const 5))))))) (local.get $th)))))
          (if (v128.any_true (local.get $f)) (then
            (local.set $l (i32.const 0))
            (loop $lloop
              (if (i32.lt_u (i32.add (local.get $j) (local.get $l)) (local.get $nr)) (then
                (local.set $dot (f64.promote_f32 (f32.load (i32.add (local.get $tmp) (i32.add (i32.shl (local.get $k) (i32.const 5)) (i32.shl (local.get $l) (i32.const 2)))))))
                (local.set $s (f64.sub (f64.add (f64x2.extract_lane 0 (local.get $qv))
                    (f64.load (i32.add (local.get $rlo) (i32.shl (i32.add (i32.add (local.get $r0) (local.get $j)) (local.get $l)) (i32.const 3)))))
                  (f64.mul (local.get $mult) (local.get $dot))))
                (if (f64.le (local.get $s) (f64x2.extract_lane 0 (local.get $th))) (then
                  (i32.store offset=0 (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 4))) (i32.add (local.get $i) (local.get $k)))
                  (i32.store offset=4 (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 4))) (i32.add (i32.add (local.get $r0) (local.get $j)) (local.get $l)))
                  (f64.store offset=8 (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 4))) (local.get $dot))
                  (local.set $n (i32.add (local.get $n) (i32.const 1)))))))
              (local.set $l (i32.add (local.get $l) (i32.const 1)))
              (br_if $lloop (i32.lt_u (local.get $l) (i32.const 8))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $kloop (i32.lt_u (local.get $k) (local.get $kmax))))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (br $rloop)))
      (local.set $i (i32.add (local.get $i) (i32.const 6)))
      (br $qloop)))
    (local.get $n))
)
