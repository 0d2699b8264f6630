//! `memcpy` and `memmove` for the static x86_64 musl build of `clockify-addons`.
//!
//! musl's x86_64 `memcpy` starts every copy with `rep movsq` and moves the bytes that do not
//! fill a word one `movsb` at a time. For the short copies that Rust code makes most (a few
//! bytes of a string pushed onto a buffer, a small struct moved), that costs tens of cycles
//! where a load and a store would do. Profiled under the flows benchmark (`perf`, 64
//! connections, one process), `memcpy` took 15-18% of the server's CPU time, and three
//! quarters of those samples were copies of fewer than 8 bytes; in the glibc build of the
//! same code the copy routine took under 3%.
//!
//! Linked into the binary, these definitions take the symbols' place: the linker then never
//! pulls musl's `memcpy.o` and `memmove.o` out of `libc.a`, so every caller (Rust code, the
//! C libraries, musl itself) uses them. They are exported only on `x86_64` musl; elsewhere the
//! platform's own routines stay, and the functions are compiled for the tests alone.
//!
//! * Up to 64 bytes: every byte is loaded (two overlapping loads of the widest size that fits,
//!   up to four 16-byte ones) before any is stored, so overlapping regions copy correctly.
//! * Longer: 16-byte steps, forwards when the destination starts before the source or the two
//!   do not overlap, backwards otherwise; the first (or last) 16 bytes are read first and
//!   written last, so an overlap never reads a byte already overwritten. Copies of at least
//!   [`REP_MOVSB_FROM`] bytes between regions that do not overlap use `rep movsb`, which
//!   processors with ERMS (Intel since 2012, AMD Zen 3 and later) run at full bandwidth.
//!
//! The functions must never call `memcpy` or `memmove` themselves: the compiler may turn a
//! copying loop into such a call. `scripts/build-static.sh` disassembles both in the built
//! binary and fails if either contains a call.
#![cfg_attr(not(test), no_std)]

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};

    /// Copies at least this long between regions that do not overlap use `rep movsb`.
    pub const REP_MOVSB_FROM: usize = 1024;

    /// `memcpy(3)`. The regions must not overlap (C's contract); this one copies correctly even
    /// if they do.
    ///
    /// # Safety
    /// `src` must be valid for reads and `dst` for writes of `n` bytes.
    #[cfg_attr(target_env = "musl", unsafe(no_mangle))]
    #[allow(unsafe_code)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller's contract, which `copy` needs.
        unsafe { copy(dst, src, n) };
        dst
    }

    /// `memmove(3)`: the regions may overlap.
    ///
    /// # Safety
    /// `src` must be valid for reads and `dst` for writes of `n` bytes.
    #[cfg_attr(target_env = "musl", unsafe(no_mangle))]
    #[allow(unsafe_code)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller's contract, which `copy` needs.
        unsafe { copy(dst, src, n) };
        dst
    }

    /// Copies `n` bytes from `src` to `dst`, which may overlap.
    ///
    /// # Safety
    /// `src` must be valid for reads and `dst` for writes of `n` bytes.
    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
        // SAFETY: the offsets read and written stay within `0..n`, which the caller guarantees
        // valid; all loads of an overlapping step happen before its stores.
        unsafe {
            if n <= 16 {
                if n >= 8 {
                    let (a, b) = (load::<u64>(src), load::<u64>(src.add(n - 8)));
                    store(dst, a);
                    store(dst.add(n - 8), b);
                } else if n >= 4 {
                    let (a, b) = (load::<u32>(src), load::<u32>(src.add(n - 4)));
                    store(dst, a);
                    store(dst.add(n - 4), b);
                } else if n >= 2 {
                    let (a, b) = (load::<u16>(src), load::<u16>(src.add(n - 2)));
                    store(dst, a);
                    store(dst.add(n - 2), b);
                } else if n == 1 {
                    *dst = *src;
                }
            } else if n <= 32 {
                let (a, b) = (load16(src), load16(src.add(n - 16)));
                store16(dst, a);
                store16(dst.add(n - 16), b);
            } else if n <= 64 {
                let (a, b) = (load16(src), load16(src.add(16)));
                let (c, d) = (load16(src.add(n - 32)), load16(src.add(n - 16)));
                store16(dst, a);
                store16(dst.add(16), b);
                store16(dst.add(n - 32), c);
                store16(dst.add(n - 16), d);
            } else if (dst as usize).wrapping_sub(src as usize) >= n {
                // `dst` is not inside `src..src + n`: a forward copy never reads a byte it
                // has already overwritten.
                if n >= REP_MOVSB_FROM && (src as usize).wrapping_sub(dst as usize) >= n {
                    rep_movsb(dst, src, n);
                } else {
                    forward(dst, src, n);
                }
            } else {
                backward(dst, src, n);
            }
        }
    }

    /// Forwards in 16-byte steps, the last 16 bytes read first and written last. `n > 16`.
    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn forward(dst: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as in `copy`; `i + 16 <= n` for every step.
        unsafe {
            let tail = load16(src.add(n - 16));
            let mut i = 0;
            while i + 16 < n {
                store16(dst.add(i), load16(src.add(i)));
                i += 16;
            }
            store16(dst.add(n - 16), tail);
        }
    }

    /// Backwards in 16-byte steps, the first 16 bytes read first and written last. `n > 16`.
    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn backward(dst: *mut u8, src: *const u8, n: usize) {
        // SAFETY: as in `copy`; every step starts at `i >= 0` and ends at `i + 16 <= n`.
        unsafe {
            let head = load16(src);
            let mut i = n - 16;
            loop {
                store16(dst.add(i), load16(src.add(i)));
                if i <= 16 {
                    break;
                }
                i -= 16;
            }
            store16(dst, head);
        }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn rep_movsb(dst: *mut u8, src: *const u8, n: usize) {
        // SAFETY: `rep movsb` copies `rcx` bytes from `rsi` to `rdi` upwards (the direction
        // flag is clear at every call, by the ABI); the caller guarantees both ranges.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn load<T: Copy>(p: *const u8) -> T {
        // SAFETY: the caller's: `p` valid for `size_of::<T>()` bytes; alignment not needed.
        unsafe { p.cast::<T>().read_unaligned() }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn store<T: Copy>(p: *mut u8, v: T) {
        // SAFETY: the caller's: `p` valid for `size_of::<T>()` bytes; alignment not needed.
        unsafe { p.cast::<T>().write_unaligned(v) }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn load16(p: *const u8) -> __m128i {
        // SAFETY: the caller's: `p` valid for 16 bytes; `loadu` needs no alignment (SSE2 is
        // part of the x86_64 baseline).
        unsafe { _mm_loadu_si128(p.cast()) }
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    unsafe fn store16(p: *mut u8, v: __m128i) {
        // SAFETY: the caller's: `p` valid for 16 bytes; `storeu` needs no alignment.
        unsafe { _mm_storeu_si128(p.cast(), v) }
    }
}

#[cfg(target_arch = "x86_64")]
pub use imp::{REP_MOVSB_FROM, memcpy, memmove};

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A buffer of distinct-looking bytes, so a byte copied from the wrong place shows.
    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.r#gen()).collect()
    }

    /// Whether `copy` (`memcpy` or `memmove`) moving `n` bytes from `from` to `to` within a copy
    /// of `base` gives what `copy_within` gives.
    #[allow(unsafe_code)]
    fn moves_like_copy_within(
        copy: unsafe extern "C" fn(*mut u8, *const u8, usize) -> *mut u8,
        base: &[u8],
        from: usize,
        to: usize,
        n: usize,
    ) -> bool {
        let mut expected = base.to_vec();
        expected.copy_within(from..from + n, to);
        let mut buf = base.to_vec();
        let p = buf.as_mut_ptr();
        // SAFETY: `copy_within` above panics unless both ranges lie inside the buffer.
        unsafe { copy(p.add(to), p.add(from), n) };
        buf == expected
    }

    /// Every length up to past the `rep movsb` threshold, at every alignment of both ends
    /// within 16 bytes, between separate buffers; the bytes around the destination untouched.
    #[test]
    #[allow(unsafe_code)]
    fn copies_every_length_and_alignment_between_separate_buffers() {
        let max = REP_MOVSB_FROM + 300;
        let src = pattern(max + 64, 1);
        for n in (0..=200)
            .chain((201..=max).step_by(37))
            .chain([REP_MOVSB_FROM, max])
        {
            for s in 0..16 {
                for d in [0, 1, 7, 8, 9, 15] {
                    let mut dst = vec![0xA5u8; max + 64];
                    // SAFETY: both buffers hold `n` bytes past the offsets.
                    let ret = unsafe { memcpy(dst.as_mut_ptr().add(d), src.as_ptr().add(s), n) };
                    assert_eq!(ret, dst.as_mut_ptr().wrapping_add(d), "returns dst");
                    assert_eq!(&dst[d..d + n], &src[s..s + n], "n={n} s={s} d={d}");
                    assert!(
                        dst[..d].iter().all(|&b| b == 0xA5),
                        "before: n={n} s={s} d={d}"
                    );
                    assert!(
                        dst[d + n..].iter().all(|&b| b == 0xA5),
                        "after: n={n} s={s} d={d}"
                    );
                }
            }
        }
    }

    /// Overlapping moves in both directions, by every distance up to 80 bytes and some far
    /// ones, for lengths on both sides of each size class; compared with `copy_within`.
    #[test]
    fn moves_overlapping_regions_in_both_directions() {
        let base = pattern(12288, 2);
        let lengths = [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 79, 80, 81, 127,
            128, 129, 255, 256, 1000, 1023, 1024, 1025, 3000,
        ];
        let offsets = (-80isize..=80).chain([-1500, -1024, 1024, 1500]);
        for n in lengths {
            for off in offsets.clone() {
                let from = 4096usize;
                let to = from.checked_add_signed(off).expect("in range");
                assert!(
                    moves_like_copy_within(memmove, &base, from, to, n),
                    "memmove n={n} off={off}"
                );
                // `memcpy` only where the regions do not overlap, as C requires.
                if off.unsigned_abs() >= n {
                    assert!(
                        moves_like_copy_within(memcpy, &base, from, to, n),
                        "memcpy n={n} off={off}"
                    );
                }
            }
        }
    }

    /// Random lengths, offsets and overlaps, checked against `copy_within`.
    #[test]
    fn agrees_with_copy_within_on_random_moves() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let base = pattern(16384, 4);
        for _ in 0..20_000 {
            let n = match rng.gen_range(0..4) {
                0 => rng.gen_range(0..=16),
                1 => rng.gen_range(17..=64),
                2 => rng.gen_range(65..=1100),
                _ => rng.gen_range(1100..=6000),
            };
            let from = rng.gen_range(0..=base.len() - n);
            let to = rng.gen_range(0..=base.len() - n);
            assert!(
                moves_like_copy_within(memmove, &base, from, to, n),
                "n={n} from={from} to={to}"
            );
        }
    }
}
