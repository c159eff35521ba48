//! One safe entry to the `gemm` crate (the matrix kernels burn-flex itself uses), for products
//! whose output graft owns: a reused buffer (no fresh pages to fault in per call) or a slice of
//! a larger one, and operands read in place through row strides. burn-flex's `float_matmul`
//! always allocates its output, which on this machine's VM cost as much as the product for the
//! Winograd blocks (page faults on 8 MiB per call).

/// A strided matrix inside `data`: entry (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same entries read as the transpose.
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// One past the largest index the matrix reads (0 for an empty matrix).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// `dst = lhs x rhs` (or `dst += lhs x rhs` when `accumulate`), `dst` row-major with
/// `dst_stride` between rows, on the calling thread (callers parallelise over independent
/// products).
///
/// Panics if the shapes disagree or a matrix does not fit in its slice: these are programming
/// errors in the caller, never caused by user data.
pub fn matmul_into(dst: &mut [f32], dst_stride: usize, lhs: Mat, rhs: Mat, accumulate: bool) {
    assert_eq!(lhs.cols, rhs.rows, "matmul_into: inner dimensions");
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        lhs.end() <= lhs.data.len(),
        "matmul_into: lhs out of bounds"
    );
    assert!(
        rhs.end() <= rhs.data.len(),
        "matmul_into: rhs out of bounds"
    );
    let out_end = if m == 0 || n == 0 {
        0
    } else {
        (m - 1) * dst_stride + n
    };
    assert!(out_end <= dst.len(), "matmul_into: dst out of bounds");
    assert!(n <= dst_stride || m <= 1, "matmul_into: dst rows overlap");
    if m == 0 || n == 0 || (k == 0 && accumulate) {
        return;
    }
    if k == 0 {
        for r in 0..m {
            dst[r * dst_stride..][..n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above bound every index gemm touches ((r, c) at r * row_stride + c *
    // col_stride over the stated rows and columns) inside each slice, `dst` is borrowed
    // mutably (no aliasing with the shared operands), and its rows do not overlap.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
