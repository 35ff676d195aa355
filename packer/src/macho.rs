//! Mach-O packing (in progress).
