//! One safe entry to the `gemm` crate (the matrix kernels burn-flex itself uses), for products
//! whose output graft owns: a reused buffer (no fresh pages to fault in per call) or a slice of
//! a larger one, and operands read in place through row strides. burn-flex's `float_matmul`
//! always allocates its output, which on this machine's VM cost as much as the product for the
//! Winograd blocks (page faults on 8 MiB per call).

use std::ops::Range;

/// A row-major matrix inside `data`: entry (r, c) is `data[r * row_stride + c]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl Mat<'_> {
    /// The index range the matrix reads (empty for an empty matrix).
    fn span(&self) -> Range<usize> {
        if self.rows == 0 || self.cols == 0 {
            return 0..0;
        }
        0..(self.rows - 1) * self.row_stride + self.cols
    }
}

/// `dst = lhs x rhs`, `dst` row-major with `dst_stride` between rows, on the calling thread
/// (callers parallelise over independent products).
///
/// Panics if the shapes disagree or a matrix does not fit in its slice: these are programming
/// errors in this crate, never caused by user data.
pub(crate) fn matmul_into(dst: &mut [f32], dst_stride: usize, lhs: Mat, rhs: Mat) {
    assert_eq!(lhs.cols, rhs.rows, "matmul_into: inner dimensions");
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        lhs.span().end <= lhs.data.len(),
        "matmul_into: lhs out of bounds"
    );
    assert!(
        rhs.span().end <= rhs.data.len(),
        "matmul_into: rhs out of bounds"
    );
    let out = Mat {
        data: dst,
        rows: m,
        cols: n,
        row_stride: dst_stride,
    };
    assert!(
        out.span().end <= dst.len(),
        "matmul_into: dst out of bounds"
    );
    assert!(
        lhs.cols <= lhs.row_stride || lhs.rows <= 1,
        "matmul_into: lhs rows overlap"
    );
    assert!(
        rhs.cols <= rhs.row_stride || rhs.rows <= 1,
        "matmul_into: rhs rows overlap"
    );
    assert!(n <= dst_stride || m <= 1, "matmul_into: dst rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            dst[r * dst_stride..][..n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above bound every index gemm reads ((r, c) at r * stride + c over the
    // stated rows and columns) inside each slice, `dst` is borrowed mutably (no aliasing with
    // the shared operands), and its rows do not overlap.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            false,
            lhs.data.as_ptr(),
            1,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            1,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
