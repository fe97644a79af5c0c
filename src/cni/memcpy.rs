//! The `memcpy` and `memmove` of the static musl plugin binaries.
//!
//! Why: musl's x86_64 `memcpy` is one `rep movsq`, whatever the size. A microcoded string
//! instruction takes ~11 ns to start on the benchmark VM even for 8 bytes, where two plain
//! moves take under 1 ns, and a plugin process makes ~3,500 copies per ADD+DEL, nearly all
//! under 64 bytes (strings, paths, netlink attributes, serde buffers): that was ~0.1 ms of
//! the own cost (a tenth of the profile's user time, all on that one instruction). Here a
//! copy of up to 64 bytes is two to four pairs of overlapping unaligned loads and stores,
//! with no loop and no branch on alignment; a longer one is `rep movsb`, which is as fast
//! as anything once it runs (and the kernel's choice too).
//!
//! Exported as `memcpy` and `memmove` only in the static musl build for x86_64 (the one
//! we deploy, where a definition of ours keeps the linker from taking libc's; musl's
//! `memmove` jumps into the middle of its `memcpy`, so the two come from one place or
//! neither); every other build keeps its libc's. The code is straight-line on purpose: a
//! loop here could be turned back into a call to `memcpy` by the optimiser, and that would
//! be this very function.

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// As `memcpy`: `src` readable and `dst` writable for `n` bytes, the two not overlapping.
#[inline(always)]
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY (all branches): every load and store below lies within the first `n` bytes of
    // `src` or `dst`; the overlapping pairs (first k bytes, last k bytes) cover all `n`
    // when k <= n <= 2k. All loads happen before any store of the same branch, which
    // would matter only for overlapping buffers, which the caller excludes anyway.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dst = a;
                *dst.add(n / 2) = b;
                *dst.add(n - 1) = c;
            }
            4..=7 => pair::<u32>(dst, src, n),
            8..=16 => pair::<u64>(dst, src, n),
            17..=32 => pair::<u128>(dst, src, n),
            33..=64 => {
                let head = (load::<u128>(src, 0), load::<u128>(src, 16));
                let tail = (load::<u128>(src, n - 32), load::<u128>(src, n - 16));
                store(dst, 0, head.0);
                store(dst, 16, head.1);
                store(dst, n - 32, tail.0);
                store(dst, n - 16, tail.1);
            }
            _ => copy_long(dst, src, n),
        }
    }
}

/// The first and the last `size_of::<T>()` bytes (which overlap when `n` is less than
/// twice that): all of `n` for `size_of::<T>() <= n <= 2 * size_of::<T>()`.
#[inline(always)]
unsafe fn pair<T: Copy>(dst: *mut u8, src: *const u8, n: usize) {
    let k = std::mem::size_of::<T>();
    // SAFETY: k <= n, so both words lie within the n bytes (the caller's promise).
    unsafe {
        let (first, last) = (load::<T>(src, 0), load::<T>(src, n - k));
        store(dst, 0, first);
        store(dst, n - k, last);
    }
}

#[inline(always)]
unsafe fn load<T: Copy>(src: *const u8, at: usize) -> T {
    // SAFETY: the caller keeps `at + size_of::<T>()` within the readable bytes.
    unsafe { src.add(at).cast::<T>().read_unaligned() }
}

#[inline(always)]
unsafe fn store<T: Copy>(dst: *mut u8, at: usize, value: T) {
    // SAFETY: the caller keeps `at + size_of::<T>()` within the writable bytes.
    unsafe { dst.add(at).cast::<T>().write_unaligned(value) }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_long(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: copies exactly n bytes forward from src to dst (the direction flag is clear
    // at every call boundary by the ABI), touching no other memory and no other register
    // than the three it is given.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copies `n` bytes from `src` to `dst`, which may overlap.
///
/// # Safety
/// As `memmove`: `src` readable and `dst` writable for `n` bytes.
#[inline(always)]
pub unsafe fn move_bytes(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: up to 64 bytes, copy_bytes loads everything before it stores anything, so
    // an overlap cannot spoil it; a longer forward copy reads each byte before it writes
    // it or any byte after it when dst is below src, and so does a backward copy when dst
    // is above.
    unsafe {
        if n <= 64 || (dst as usize).wrapping_sub(src as usize) >= n {
            copy_bytes(dst, src, n)
        } else {
            copy_long_backward(dst, src, n)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_long_backward(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: n >= 1; copies exactly n bytes from the last down to the first, then clears
    // the direction flag again as the ABI wants it at every call boundary.
    unsafe {
        std::arch::asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn copy_long_backward(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's promise, passed on (only built where this is not `memmove`).
    unsafe { std::ptr::copy(src, dst, n) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn copy_long(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's promise, passed on (only built where this is not `memcpy`).
    unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
}

/// The symbol itself, where ours replaces libc's (see the module's comment).
///
/// # Safety
/// As C's `memcpy`.
#[cfg(all(target_env = "musl", target_arch = "x86_64", not(test)))]
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: C's contract for memcpy is copy_bytes's.
    unsafe { copy_bytes(dst, src, n) };
    dst
}

/// # Safety
/// As C's `memmove`.
#[cfg(all(target_env = "musl", target_arch = "x86_64", not(test)))]
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: C's contract for memmove is move_bytes's.
    unsafe { move_bytes(dst, src, n) };
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from 0 to 300 (each branch and its edges), at every offset of source
    /// and destination within a word, between guard bytes that must stay untouched.
    #[test]
    fn copies_exactly_n_bytes_for_every_length_and_alignment() {
        let pattern: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=300 {
            for src_off in 0..8 {
                for dst_off in 0..8 {
                    let mut out = vec![0xEEu8; 320];
                    let src = &pattern[src_off..src_off + n];
                    // SAFETY: both ranges are in bounds and in different buffers.
                    unsafe { copy_bytes(out.as_mut_ptr().add(dst_off), src.as_ptr(), n) };
                    assert_eq!(
                        &out[dst_off..dst_off + n],
                        src,
                        "n={n} src+{src_off} dst+{dst_off}"
                    );
                    assert!(
                        out[..dst_off].iter().all(|&b| b == 0xEE),
                        "wrote before, n={n}"
                    );
                    assert!(
                        out[dst_off + n..].iter().all(|&b| b == 0xEE),
                        "wrote past, n={n}"
                    );
                }
            }
        }
    }

    /// Overlapping moves both ways, every length to 300 and every shift up to 70.
    #[test]
    fn moves_overlapping_bytes_either_way() {
        let pattern: Vec<u8> = (0..400u32).map(|i| (i * 13 + 1) as u8).collect();
        for n in 0..=300 {
            for shift in 0..=70 {
                let mut up = pattern.clone();
                // SAFETY: both ranges lie within `up` (n + shift <= 370 < 400).
                unsafe { move_bytes(up.as_mut_ptr().add(shift), up.as_ptr(), n) };
                assert_eq!(
                    &up[shift..shift + n],
                    &pattern[..n],
                    "up n={n} shift={shift}"
                );
                assert_eq!(&up[shift + n..], &pattern[shift + n..], "past, n={n}");
                let mut down = pattern.clone();
                // SAFETY: as above.
                unsafe { move_bytes(down.as_mut_ptr(), down.as_ptr().add(shift), n) };
                assert_eq!(
                    &down[..n],
                    &pattern[shift..shift + n],
                    "down n={n} shift={shift}"
                );
                assert_eq!(&down[n..], &pattern[n..], "past, n={n}");
            }
        }
    }

    #[test]
    fn a_long_copy_is_exact() {
        let src: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; src.len() + 1];
        // SAFETY: dst holds src.len() + 1 bytes; the buffers are distinct.
        unsafe { copy_bytes(dst.as_mut_ptr(), src.as_ptr(), src.len()) };
        assert_eq!(&dst[..src.len()], &src[..]);
        assert_eq!(dst[src.len()], 0);
    }
}
