/* The machine's peak f32 rate, for BENCHMARKS.md's "distance to the physical limit": 12
 * independent chains of AVX-512 FMAs per thread (enough to cover the FMA latency on both pipes),
 * nothing loaded or stored.
 * gcc -O2 -mavx512f -mfma -fopenmp bench/peak.c -o /tmp/peak && OMP_NUM_THREADS=2 /tmp/peak */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define FMA(x) x = _mm512_fmadd_ps(x, b, c);

int main(void) {
    const long iters = 100000000L;
    double start = omp_get_wtime();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
        __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
        /* Distinct starting values, so the compiler cannot merge the chains. */
        __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2),
               a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5),
               a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8),
               a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
        for (long i = 0; i < iters; i++) {
            FMA(a0) FMA(a1) FMA(a2) FMA(a3) FMA(a4) FMA(a5)
            FMA(a6) FMA(a7) FMA(a8) FMA(a9) FMA(a10) FMA(a11)
        }
        __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                 _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
        t = _mm512_add_ps(t, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
        sink += _mm512_reduce_add_ps(t);
    }
    double secs = omp_get_wtime() - start;
    int threads = omp_get_max_threads();
    printf("%d threads: %.0f GFLOP/s peak (f32 FMA; checksum %g)\n", threads,
           (double)threads * iters * 12 * 16 * 2 / secs / 1e9, sink);
    return 0;
}
