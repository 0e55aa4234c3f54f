/* Regular files: path_open (flags and errors), fd_read, fd_write, fd_pread,
 * fd_pwrite, fd_seek, fd_tell, fd_filestat_get, fd_filestat_set_size,
 * fd_allocate, fd_advise, fd_sync, fd_datasync, fd_fdstat_get,
 * fd_fdstat_set_flags, fd_close.  Mixes wasi-libc's POSIX API (open, read,
 * lseek, pread, ftruncate, fstat, fcntl, ...) with direct calls.
 *
 * Expects in the sandbox: hello.txt = "Hello, WASI!\n", an empty directory dir/. */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

static void show_size(const char *label, __wasi_fd_t fd) {
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_fd_filestat_get(fd, &st);
    if (e) say("%s: filestat errno %u\n", label, (unsigned)e);
    else say("%s: type=%u size=%llu nlink=%llu\n", label, (unsigned)st.filetype,
             (unsigned long long)st.size, (unsigned long long)st.nlink);
}

static void show_tell(const char *label, __wasi_fd_t fd) {
    __wasi_filesize_t off = 12345;
    __wasi_errno_t e = __wasi_fd_tell(fd, &off);
    say("%s: tell errno=%u offset=%llu\n", label, (unsigned)e, (unsigned long long)off);
}

static void posix_part(void) {
    say("-- posix\n");
    int fd = open("/sandbox/hello.txt", O_RDONLY);
    say("open hello ok=%d\n", fd >= 0);
    char buf[64] = {0};
    ssize_t n = read(fd, buf, 5);
    say("read 5 -> %zd [%.*s]\n", n, (int)n, buf);
    n = read(fd, buf, sizeof buf);
    say("read rest -> %zd [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    n = read(fd, buf, sizeof buf);
    say("read at eof -> %zd\n", n);
    say("lseek SEEK_SET 7 -> %lld\n", (long long)lseek(fd, 7, SEEK_SET));
    say("lseek SEEK_CUR 2 -> %lld\n", (long long)lseek(fd, 2, SEEK_CUR));
    say("lseek SEEK_END -3 -> %lld\n", (long long)lseek(fd, -3, SEEK_END));
    n = read(fd, buf, sizeof buf);
    say("read after seek -> %zd [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    errno = 0;
    say("lseek to -1 -> %lld errno=%d\n", (long long)lseek(fd, -1, SEEK_SET), errno);
    say("lseek past end 100 -> %lld\n", (long long)lseek(fd, 100, SEEK_SET));
    n = read(fd, buf, sizeof buf);
    say("read past end -> %zd\n", n);
    n = pread(fd, buf, 4, 7);
    say("pread 4@7 -> %zd [%.*s]\n", n, (int)(n > 0 ? n : 0), buf);
    say("offset after pread: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
    errno = 0;
    n = write(fd, "x", 1);
    say("write on O_RDONLY -> %zd errno=%d\n", n, errno);
    struct stat st;
    say("fstat -> %d regular=%d size=%lld\n", fstat(fd, &st), S_ISREG(st.st_mode),
        (long long)st.st_size);
    say("close -> %d\n", close(fd));
    errno = 0;
    say("close again -> %d errno=%d\n", close(fd), errno);

    errno = 0;
    fd = open("/sandbox/missing.txt", O_RDONLY);
    say("open missing -> %d errno=%d\n", fd, errno);
    errno = 0;
    fd = open("/sandbox/hello.txt", O_RDONLY | O_DIRECTORY);
    say("open file O_DIRECTORY -> %d errno=%d\n", fd, errno);
    errno = 0;
    fd = open("/sandbox/dir", O_WRONLY);
    say("open dir O_WRONLY -> %d errno=%d\n", fd, errno);
    errno = 0;
    fd = open("/sandbox/hello.txt", O_WRONLY | O_CREAT | O_EXCL, 0644);
    say("open existing O_EXCL -> %d errno=%d\n", fd, errno);
    errno = 0;
    fd = open("/sandbox/nodir/new.txt", O_WRONLY | O_CREAT, 0644);
    say("create in missing dir -> %d errno=%d\n", fd, errno);
    errno = 0;
    fd = open("/sandbox/hello.txt/x", O_RDONLY);
    say("open file/x -> %d errno=%d\n", fd, errno);

    /* Create, write, truncate, append. */
    fd = open("/sandbox/posix.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    say("create posix.txt ok=%d\n", fd >= 0);
    say("write -> %zd\n", write(fd, "0123456789", 10));
    say("pwrite 2@3 -> %zd\n", pwrite(fd, "ab", 2, 3));
    say("offset after pwrite: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
    say("pwrite 3@14 (past end) -> %zd\n", pwrite(fd, "END", 3, 14));
    say("fstat size=%lld\n", (long long)(fstat(fd, &st) == 0 ? st.st_size : -1));
    n = pread(fd, buf, sizeof buf, 0);
    say("contents %zd:", n);
    for (ssize_t i = 0; i < n; i++) say(" %02x", (unsigned char)buf[i]);
    say("\n");
    say("ftruncate 6 -> %d\n", ftruncate(fd, 6));
    say("ftruncate 8 -> %d\n", ftruncate(fd, 8));
    n = pread(fd, buf, sizeof buf, 0);
    say("after truncate %zd:", n);
    for (ssize_t i = 0; i < n; i++) say(" %02x", (unsigned char)buf[i]);
    say("\n");
    errno = 0;
    say("ftruncate -1 -> %d errno=%d\n", ftruncate(fd, -1), errno);
    say("fsync -> %d\n", fsync(fd));
    say("fdatasync -> %d\n", fdatasync(fd));
    say("posix_fadvise SEQUENTIAL -> %d\n", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    say("fcntl F_GETFL append=%d\n", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    say("fcntl F_SETFL O_APPEND -> %d\n", fcntl(fd, F_SETFL, O_APPEND));
    say("fcntl F_GETFL append=%d\n", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    lseek(fd, 0, SEEK_SET);
    say("append write -> %zd\n", write(fd, "++", 2));
    say("offset after append: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
    say("close -> %d\n", close(fd));

    fd = open("/sandbox/hello.txt", O_WRONLY | O_APPEND);
    say("open O_APPEND ok=%d\n", fd >= 0);
    say("write -> %zd\n", write(fd, "more\n", 5));
    errno = 0;
    n = read(fd, buf, 4);
    say("read on O_WRONLY -> %zd errno=%d\n", n, errno);
    close(fd);

    fd = open("/sandbox/posix.txt", O_WRONLY | O_TRUNC);
    say("O_TRUNC ok=%d size=%lld\n", fd >= 0, (long long)(fstat(fd, &st) == 0 ? st.st_size : -1));
    say("write -> %zd\n", write(fd, "fresh", 5));
    close(fd);
}

static void direct_part(void) {
    say("-- direct\n");
    __wasi_fd_t fd;
    __wasi_errno_t e = open_at(SANDBOX, "data.bin", 0, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL,
                               0, &fd);
    show("path_open creat|excl", e);
    show_size("new", fd);
    show_tell("new", fd);

    /* Gathering write and scattering read. */
    __wasi_ciovec_t out[3] = {{(const uint8_t *)"abc", 3}, {(const uint8_t *)"", 0},
                              {(const uint8_t *)"defgh", 5}};
    __wasi_size_t n = 0;
    say("fd_write iovs: %u n=%u\n", (unsigned)write_all(fd, out, 3, &n), (unsigned)n);
    e = __wasi_fd_write(fd, out, 0, &n);
    say("fd_write 0 iovs: %u n=%u\n", (unsigned)e, (unsigned)n);
    show_tell("after write", fd);
    __wasi_filesize_t pos = 99;
    e = __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &pos);
    say("fd_seek set 0: %u pos=%llu\n", (unsigned)e, (unsigned long long)pos);
    uint8_t a[2] = {0}, b[4] = {0}, c[10] = {0};
    __wasi_iovec_t in[3] = {{a, 2}, {b, 4}, {c, 10}};
    e = read_all(fd, in, 3, &n);
    say("fd_read iovs: %u n=%u [%.2s|%.4s|%.10s]\n", (unsigned)e, (unsigned)n, a, b, c);
    e = __wasi_fd_seek(fd, -3, __WASI_WHENCE_CUR, &pos);
    say("fd_seek cur -3: %u pos=%llu\n", (unsigned)e, (unsigned long long)pos);
    e = __wasi_fd_seek(fd, 2, __WASI_WHENCE_END, &pos);
    say("fd_seek end +2: %u pos=%llu\n", (unsigned)e, (unsigned long long)pos);
    pos = 77;
    e = __wasi_fd_seek(fd, -100, __WASI_WHENCE_END, &pos);
    say("fd_seek end -100: %u\n", (unsigned)e);
    show_tell("after failed seeks", fd);

    memset(c, 0, sizeof c);
    __wasi_iovec_t one = {c, 3};
    e = __wasi_fd_pread(fd, &one, 1, 2, &n);
    say("fd_pread 3@2: %u n=%u [%.3s]\n", (unsigned)e, (unsigned)n, c);
    e = __wasi_fd_pread(fd, &one, 1, 1000, &n);
    say("fd_pread past eof: %u n=%u\n", (unsigned)e, (unsigned)n);
    __wasi_ciovec_t pw = {(const uint8_t *)"XYZ", 3};
    e = __wasi_fd_pwrite(fd, &pw, 1, 1, &n);
    say("fd_pwrite 3@1: %u n=%u\n", (unsigned)e, (unsigned)n);
    show_tell("after pread/pwrite", fd);
    show_size("after pwrite", fd);

    show("fd_filestat_set_size 4", __wasi_fd_filestat_set_size(fd, 4));
    show_size("shrunk", fd);
    show_tell("after shrink", fd);
    show("fd_filestat_set_size 12", __wasi_fd_filestat_set_size(fd, 12));
    show_size("grown", fd);
    show("fd_advise normal", __wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_NORMAL));
    show("fd_advise sequential", __wasi_fd_advise(fd, 0, 100, __WASI_ADVICE_SEQUENTIAL));
    show("fd_advise random", __wasi_fd_advise(fd, 4, 4, __WASI_ADVICE_RANDOM));
    show("fd_advise willneed", __wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_WILLNEED));
    show("fd_advise dontneed", __wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_DONTNEED));
    show("fd_advise noreuse", __wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_NOREUSE));
    show("fd_advise bad fd", __wasi_fd_advise(BAD_FD, 0, 0, __WASI_ADVICE_NORMAL));
    /* Within the current size, so the size is 12 whether or not it is supported. */
    show("fd_allocate 0+12", __wasi_fd_allocate(fd, 0, 12));
    show_size("after allocate", fd);
    show("fd_allocate bad fd", __wasi_fd_allocate(BAD_FD, 0, 10));
    show("fd_sync", __wasi_fd_sync(fd));
    show("fd_datasync", __wasi_fd_datasync(fd));
    show("fd_sync bad fd", __wasi_fd_sync(BAD_FD));
    show("fd_datasync bad fd", __wasi_fd_datasync(BAD_FD));

    __wasi_fdstat_t fs;
    e = __wasi_fd_fdstat_get(fd, &fs);
    say("fd_fdstat_get: %u type=%u flags=%u\n", (unsigned)e, (unsigned)fs.fs_filetype,
        (unsigned)fs.fs_flags);
    show("fd_fdstat_set_flags append", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_APPEND));
    e = __wasi_fd_fdstat_get(fd, &fs);
    say("fd_fdstat_get: %u flags=%u\n", (unsigned)e, (unsigned)fs.fs_flags);
    e = __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &pos);
    e = put(fd, "!", 1, &n);
    say("append write: %u n=%u\n", (unsigned)e, (unsigned)n);
    show_tell("after append write", fd);
    show("fd_fdstat_set_flags 0", __wasi_fd_fdstat_set_flags(fd, 0));
    e = __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &pos);
    e = put(fd, "?", 1, &n);
    say("plain write at 0: %u n=%u\n", (unsigned)e, (unsigned)n);
    show("fd_fdstat_set_flags bad fd", __wasi_fd_fdstat_set_flags(BAD_FD, 0));
    show("fd_fdstat_set_flags nonblock", __wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_NONBLOCK));
    e = __wasi_fd_fdstat_get(fd, &fs);
    say("fd_fdstat_get: %u nonblock=%d\n", (unsigned)e,
        (fs.fs_flags & __WASI_FDFLAGS_NONBLOCK) != 0);
    show("fd_fdstat_set_flags 0", __wasi_fd_fdstat_set_flags(fd, 0));
    show("fd_close", __wasi_fd_close(fd));
    show("fd_close again", __wasi_fd_close(fd));

    e = open_at(SANDBOX, "data.bin", 0, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0, &fd);
    show("path_open creat|excl existing", e);
    e = open_at(SANDBOX, "data.bin", 0, __WASI_OFLAGS_DIRECTORY, 0, &fd);
    show("path_open file as directory", e);
    e = open_at(SANDBOX, "dir", 0, __WASI_OFLAGS_TRUNC, 0, &fd);
    show("path_open dir with trunc", e);
    e = open_at(SANDBOX, "nope", 0, 0, 0, &fd);
    show("path_open missing", e);
    e = open_at(SANDBOX, "nope/deeper", 0, __WASI_OFLAGS_CREAT, 0, &fd);
    show("path_open creat in missing dir", e);
    e = open_at(SANDBOX, "", 0, 0, 0, &fd);
    show("path_open empty path", e);
    e = open_at(SANDBOX, "data.bin", 0, __WASI_OFLAGS_TRUNC, 0, &fd);
    show("path_open trunc", e);
    show_size("truncated", fd);
    (void)__wasi_fd_close(fd);
    e = open_at(SANDBOX, "data.bin", 0, 0, 0, &fd);
    /* Read-only rights: writing must fail. */
    (void)__wasi_fd_close(fd);
    e = __wasi_path_open(SANDBOX, 0, "hello.txt", 0,
                         __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_FILESTAT_GET, 0, 0, &fd);
    show("path_open read-only rights", e);
    e = put(fd, "no", 2, &n);
    show("fd_write without FD_WRITE right", e);
    show("fd_filestat_set_size without the right", __wasi_fd_filestat_set_size(fd, 1));
    show_size("hello.txt still", fd);
    (void)__wasi_fd_close(fd);
    e = __wasi_path_open(SANDBOX, 0, "data.bin", 0, __WASI_RIGHTS_FD_WRITE, 0, 0, &fd);
    show("path_open write-only rights", e);
    {
        uint8_t b[4];
        __wasi_iovec_t iov = {b, sizeof b};
        show("fd_read without FD_READ right", __wasi_fd_read(fd, &iov, 1, &n));
        show("fd_pread without FD_READ right", __wasi_fd_pread(fd, &iov, 1, 0, &n));
    }
    (void)__wasi_fd_close(fd);
    e = open_at(BAD_FD, "hello.txt", 0, 0, 0, &fd);
    show("path_open bad dirfd", e);
}

int main(void) {
    posix_part();
    direct_part();
    show_file("hello.txt");
    show_file("posix.txt");
    return 0;
}
