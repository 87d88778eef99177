# Deterministic data shared by the guest test runner and the host side of hype's guest tests.
# Pure functions only (no side effects): guest/test/contract.test.ts runs them on the host with busybox
# and compares their output byte for byte with the TypeScript generators in guest/src/test-contract.ts.

# hype_console_text: the text the console test writes to /dev/hvc0 (64 lines, 4672 bytes).
hype_console_text() {
	awk 'BEGIN { for (i = 0; i < 64; i++) printf "hype-console %04d the quick brown fox jumps over the lazy dog 0123456789\n", i }'
}

# hype_blk_pattern FIRST COUNT: lines FIRST..FIRST+COUNT-1 of the block pattern, 16 bytes each
# ("hype-blk-%06x\n"), so byte offset B of the pattern stream lies in line B/16 and every sector of a
# disk filled with it is different.
hype_blk_pattern() {
	# Lines are gathered into 4 KiB chunks: one write() per line costs a VM exit per syscall on PVM.
	awk -v first="$1" -v count="$2" 'BEGIN {
		s = ""
		for (i = first; i < first + count; i++) {
			s = s sprintf("hype-blk-%06x\n", i)
			if (length(s) >= 4096) { printf "%s", s; s = "" }
		}
		printf "%s", s
	}'
}

# hype_blk_input_text: the content of hype/input.txt on the ext4 disk /dev/vda (128 lines, 8 KiB).
hype_blk_input_text() {
	awk 'BEGIN { for (i = 0; i < 128; i++) printf "hype input line %04d: 0123456789abcdefghijklmnopqrstuvwxyz-----\n", i }'
}

# hype_busy_loop: the CPU-bound work each of the SMP test's parallel jobs does; prints its result.
hype_busy_loop() {
	awk 'BEGIN { s = 0; for (i = 0; i < 1000000; i++) s += i % 7; print s }'
}
