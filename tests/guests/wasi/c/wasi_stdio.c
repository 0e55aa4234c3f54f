/* Standard streams: fd_fdstat_get, fd_filestat_get, fd_seek, fd_tell,
 * fd_pread, fd_pwrite, fd_read and fd_write on fds 0, 1 and 2 (including the
 * wrong direction), interleaved stdout/stderr output, a read of stdin in
 * small pieces, and fd_close of stdin.  The test supplies stdin "abcdefghij". */
#include "guest.h"

static void probe(__wasi_fd_t fd) {
    __wasi_fdstat_t fs;
    __wasi_filestat_t st;
    __wasi_filesize_t off = 0;
    uint8_t buf[4];
    __wasi_iovec_t iov = {buf, sizeof buf};
    __wasi_ciovec_t ciov = {(const uint8_t *)"", 0};
    __wasi_size_t n;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &fs);
    say("fd %u: fdstat=%u", (unsigned)fd, (unsigned)e);
    say(" seek=%u", (unsigned)__wasi_fd_seek(fd, 0, __WASI_WHENCE_CUR, &off));
    say(" tell=%u", (unsigned)__wasi_fd_tell(fd, &off));
    say(" pread=%u", (unsigned)__wasi_fd_pread(fd, &iov, 1, 0, &n));
    say(" pwrite=%u", (unsigned)__wasi_fd_pwrite(fd, &ciov, 1, 0, &n));
    say(" filestat=%u", (unsigned)__wasi_fd_filestat_get(fd, &st));
    say(" prestat=%u", (unsigned)__wasi_fd_prestat_get(fd, (__wasi_prestat_t *)(void *)buf));
    say("\n");
}

int main(void) {
    probe(0);
    probe(1);
    probe(2);
    {
        uint8_t d[64];
        __wasi_size_t used;
        say("fd_readdir on stdio: 0=%u", (unsigned)__wasi_fd_readdir(0, d, sizeof d, 0, &used));
        say(" 1=%u", (unsigned)__wasi_fd_readdir(1, d, sizeof d, 0, &used));
        say(" 2=%u\n", (unsigned)__wasi_fd_readdir(2, d, sizeof d, 0, &used));
    }
    uint8_t buf[8];
    __wasi_iovec_t iov = {buf, sizeof buf};
    __wasi_size_t n = 0;
    show("fd_read from stdout", __wasi_fd_read(1, &iov, 1, &n));
    show("fd_read from stderr", __wasi_fd_read(2, &iov, 1, &n));
    show("fd_write to stdin", put(0, "x", 1, &n));

    for (int i = 0; i < 3; i++) {
        out_fd(1, "out %d\n", i);
        out_fd(2, "err %d\n", i);
    }
    char got[32] = {0};
    size_t total = 0;
    for (;;) {
        __wasi_iovec_t piece = {(uint8_t *)got + total, 3};
        __wasi_errno_t e = __wasi_fd_read(0, &piece, 1, &n);
        if (e) { say("fd_read stdin: %u\n", (unsigned)e); break; }
        if (n == 0) break;
        total += n;
        if (total + 3 >= sizeof got) break;
    }
    say("stdin: %zu [%s]\n", total, got);
    show("fd_read stdin at eof", __wasi_fd_read(0, &iov, 1, &n));
    say("eof read n=%u\n", (unsigned)n);
    show("fd_close stdin", __wasi_fd_close(0));
    show("fd_read closed stdin", __wasi_fd_read(0, &iov, 1, &n));
    /* A zero-length write is fine. */
    show("fd_write 0 bytes to stderr", put(2, "", 0, &n));
    say("n=%u\n", (unsigned)n);
    return 0;
}
