/* Shared helpers for the WASI command guests in this directory.
 *
 * Every guest prints only deterministic facts (errno numbers, contents,
 * sizes, sorted listings, comparisons), so that its stdout is identical on
 * every correct WASI implementation.  Output goes through write(2) on fd 1
 * (fd_write) without stdio buffering, so nothing is lost on proc_exit.
 */
#ifndef WASI_GUEST_H
#define WASI_GUEST_H

#define _DEFAULT_SOURCE 1  /* strnlen, symlink, readlink, d_type, ... */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

/* The first preopened directory (the tests preopen "/sandbox" as fd 3). */
#define SANDBOX ((__wasi_fd_t)3)
#define BAD_FD ((__wasi_fd_t)99)

/* All rights a file or directory descriptor can have in preview1. */
#define ALL_RIGHTS ((__wasi_rights_t)0x1FFFFFFFull)

__attribute__((format(printf, 2, 3)))
static inline void out_fd(int fd, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = write(fd, buf + done, (size_t)n - done);
        if (w <= 0) return;
        done += (size_t)w;
    }
}

#define say(...) out_fd(1, __VA_ARGS__)

/* Print "label: errno" for a WASI call's result. */
static inline void show(const char *label, __wasi_errno_t e) { say("%s: %u\n", label, (unsigned)e); }

/* Rights that only make sense for writing a regular file. */
#define FILE_WRITE_RIGHTS                                                   \
    (__WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_DATASYNC | __WASI_RIGHTS_FD_ALLOCATE | \
     __WASI_RIGHTS_FD_FILESTAT_SET_SIZE)

/* Open PATH below directory DIR with explicit flags and all rights; for
 * O_DIRECTORY all but the file-writing ones (as wasi-libc's opendir). */
static inline __wasi_errno_t open_at(__wasi_fd_t dir, const char *path,
                                     __wasi_lookupflags_t lookup, __wasi_oflags_t oflags,
                                     __wasi_fdflags_t fdflags, __wasi_fd_t *fd) {
    __wasi_rights_t base = ALL_RIGHTS;
    if (oflags & __WASI_OFLAGS_DIRECTORY) base &= ~(__wasi_rights_t)FILE_WRITE_RIGHTS;
    *fd = (__wasi_fd_t)-1;
    return __wasi_path_open(dir, lookup, path, oflags, base, ALL_RIGHTS, fdflags, fd);
}

/* Read a whole file below the sandbox (symlinks followed) into BUF
 * (NUL-terminated); returns its length or -errno. */
static inline long slurp(const char *path, char *buf, size_t cap) {
    __wasi_fd_t fd;
    __wasi_errno_t e = open_at(SANDBOX, path, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, 0, 0, &fd);
    if (e) return -(long)e;
    size_t total = 0;
    for (;;) {
        __wasi_iovec_t iov = {(uint8_t *)buf + total, cap - 1 - total};
        __wasi_size_t n = 0;
        e = __wasi_fd_read(fd, &iov, 1, &n);
        if (e) { (void)__wasi_fd_close(fd); return -(long)e; }
        if (n == 0 || total + n >= cap - 1) { total += n; break; }
        total += n;
    }
    buf[total] = 0;
    (void)__wasi_fd_close(fd);
    return (long)total;
}

/* Print a file's contents (or the errno that reading it gave). */
static inline void show_file(const char *path) {
    char buf[512];
    long n = slurp(path, buf, sizeof buf);
    if (n < 0) say("file %s: errno %ld\n", path, -n);
    else say("file %s: %ld [%s]\n", path, n, buf);
}

/* Write BUF (LEN bytes) at the current offset of FD; returns errno. */
static inline __wasi_errno_t put(__wasi_fd_t fd, const void *buf, size_t len, __wasi_size_t *nw) {
    __wasi_ciovec_t iov = {(const uint8_t *)buf, len};
    return __wasi_fd_write(fd, &iov, 1, nw);
}

/* fd_write may write less than asked (wasmtime writes at most one iovec per
 * call): keep writing the rest.  Returns the first error; *total counts the
 * bytes written.  Consumes IOV. */
static inline __wasi_errno_t write_all(__wasi_fd_t fd, __wasi_ciovec_t *iov, size_t cnt,
                                       __wasi_size_t *total) {
    *total = 0;
    for (;;) {
        while (cnt > 0 && iov->buf_len == 0) { iov++; cnt--; }
        if (cnt == 0) return 0;
        __wasi_size_t n = 0;
        __wasi_errno_t e = __wasi_fd_write(fd, iov, cnt, &n);
        if (e) return e;
        if (n == 0) return 0;
        *total += n;
        while (n > 0 && cnt > 0) {
            size_t k = n < iov->buf_len ? n : iov->buf_len;
            iov->buf += k; iov->buf_len -= k; n -= k;
            if (iov->buf_len == 0) { iov++; cnt--; }
        }
    }
}

/* The same for fd_read; stops at end of file (a read of 0 bytes). */
static inline __wasi_errno_t read_all(__wasi_fd_t fd, __wasi_iovec_t *iov, size_t cnt,
                                      __wasi_size_t *total) {
    *total = 0;
    for (;;) {
        while (cnt > 0 && iov->buf_len == 0) { iov++; cnt--; }
        if (cnt == 0) return 0;
        __wasi_size_t n = 0;
        __wasi_errno_t e = __wasi_fd_read(fd, iov, cnt, &n);
        if (e) return e;
        if (n == 0) return 0;
        *total += n;
        while (n > 0 && cnt > 0) {
            size_t k = n < iov->buf_len ? n : iov->buf_len;
            iov->buf += k; iov->buf_len -= k; n -= k;
            if (iov->buf_len == 0) { iov++; cnt--; }
        }
    }
}

/* Create (or truncate) a file below the sandbox with the given contents. */
static inline __wasi_errno_t make_file(const char *path, const char *text) {
    __wasi_fd_t fd;
    __wasi_errno_t e = open_at(SANDBOX, path, 0, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC, 0, &fd);
    if (e) return e;
    __wasi_size_t n;
    e = put(fd, text, strlen(text), &n);
    __wasi_errno_t c = __wasi_fd_close(fd);
    return e ? e : c;
}

#endif
