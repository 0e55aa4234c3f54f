/* Invalid arguments, one case per run (argv[1] names it): out-of-range enum
 * values, undefined flag bits, guest pointers outside linear memory, and
 * paths that are not valid strings.  Each case prints the errno the call
 * returned -- unless the runtime traps instead, which the test compares too.
 * Every case ends with "done" if the call returned. */
#include "guest.h"

#include <stdlib.h>

#define RAW(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))

RAW(path_open) extern int32_t raw_path_open(int32_t fd, int32_t dirflags, const char *path,
                                            int32_t path_len, int32_t oflags, int64_t base,
                                            int64_t inheriting, int32_t fdflags, __wasi_fd_t *out);
RAW(path_create_directory) extern int32_t raw_path_create_directory(int32_t fd, const char *path,
                                                                    int32_t path_len);
RAW(fd_seek) extern int32_t raw_fd_seek(int32_t fd, int64_t offset, int32_t whence,
                                        uint64_t *out);
RAW(fd_advise) extern int32_t raw_fd_advise(int32_t fd, int64_t offset, int64_t len,
                                            int32_t advice);
RAW(clock_time_get) extern int32_t raw_clock_time_get(int32_t id, int64_t precision,
                                                      uint64_t *out);
RAW(clock_res_get) extern int32_t raw_clock_res_get(int32_t id, uint64_t *out);
RAW(fd_fdstat_set_flags) extern int32_t raw_fd_fdstat_set_flags(int32_t fd, int32_t flags);
RAW(path_filestat_set_times) extern int32_t raw_path_filestat_set_times(
    int32_t fd, int32_t flags, const char *path, int32_t path_len, int64_t atim, int64_t mtim,
    int32_t fst_flags);
RAW(sock_shutdown) extern int32_t raw_sock_shutdown(int32_t fd, int32_t how);
RAW(args_sizes_get) extern int32_t raw_args_sizes_get(uint32_t argc_ptr, uint32_t size_ptr);
RAW(fd_read) extern int32_t raw_fd_read(int32_t fd, const void *iovs, int32_t iovs_len,
                                        uint32_t nread_ptr);
RAW(random_get) extern int32_t raw_random_get(uint32_t buf, int32_t len);

#define FAR 0xFFFFFFF0u /* far beyond this guest's memory */

static void result(const char *what, int32_t e) { say("%s: %d\ndone\n", what, (int)e); }

static __wasi_fd_t open_file(void) {
    __wasi_fd_t fd;
    __wasi_errno_t e = open_at(SANDBOX, "file.txt", 0, 0, 0, &fd);
    if (e) { say("open file.txt: %u\n", (unsigned)e); exit(1); }
    return fd;
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    say("case %s\n", c);
    __wasi_fd_t fd;
    uint64_t u64;
    if (!strcmp(c, "whence")) {
        result("fd_seek whence=7", raw_fd_seek((int32_t)open_file(), 0, 7, &u64));
    } else if (!strcmp(c, "advice")) {
        result("fd_advise advice=9", raw_fd_advise((int32_t)open_file(), 0, 0, 9));
    } else if (!strcmp(c, "clock_id")) {
        result("clock_time_get id=9", raw_clock_time_get(9, 0, &u64));
    } else if (!strcmp(c, "clock_res_id")) {
        result("clock_res_get id=9", raw_clock_res_get(9, &u64));
    } else if (!strcmp(c, "eventtype")) {
        __wasi_subscription_t s;
        memset(&s, 0, sizeof s);
        s.u.tag = 7;
        __wasi_event_t ev;
        __wasi_size_t n;
        result("poll_oneoff tag=7", (int32_t)__wasi_poll_oneoff(&s, &ev, 1, &n));
    } else if (!strcmp(c, "oflags")) {
        result("path_open oflags=0x40",
               raw_path_open(SANDBOX, 0, "file.txt", 8, 0x40, (int64_t)ALL_RIGHTS,
                             (int64_t)ALL_RIGHTS, 0, &fd));
    } else if (!strcmp(c, "fdflags")) {
        result("path_open fdflags=0x80",
               raw_path_open(SANDBOX, 0, "file.txt", 8, 0, (int64_t)ALL_RIGHTS,
                             (int64_t)ALL_RIGHTS, 0x80, &fd));
    } else if (!strcmp(c, "lookupflags")) {
        result("path_open lookupflags=0x10",
               raw_path_open(SANDBOX, 0x10, "file.txt", 8, 0, (int64_t)ALL_RIGHTS,
                             (int64_t)ALL_RIGHTS, 0, &fd));
    } else if (!strcmp(c, "set_flags")) {
        result("fd_fdstat_set_flags flags=0x40", raw_fd_fdstat_set_flags((int32_t)open_file(), 0x40));
    } else if (!strcmp(c, "fstflags")) {
        result("path_filestat_set_times fst_flags=0x30",
               raw_path_filestat_set_times(SANDBOX, 0, "file.txt", 8, 0, 0, 0x30));
    } else if (!strcmp(c, "sdflags")) {
        result("sock_shutdown how=0x8", raw_sock_shutdown((int32_t)open_file(), 0x8));
    } else if (!strcmp(c, "fault_args")) {
        result("args_sizes_get far pointer", raw_args_sizes_get(FAR, FAR));
    } else if (!strcmp(c, "fault_iovec")) {
        __wasi_iovec_t iov = {(uint8_t *)(uintptr_t)FAR, 8};
        uint32_t n;
        result("fd_read far buffer", raw_fd_read((int32_t)open_file(), &iov, 1, (uint32_t)(uintptr_t)&n));
    } else if (!strcmp(c, "fault_random")) {
        result("random_get far buffer", raw_random_get(FAR, 16));
    } else if (!strcmp(c, "fault_path")) {
        result("path_create_directory far path",
               raw_path_create_directory(SANDBOX, (const char *)(uintptr_t)FAR, 8));
    } else if (!strcmp(c, "path_nul")) {
        result("path_create_directory \"a\\0b\"", raw_path_create_directory(SANDBOX, "a\0b", 3));
    } else if (!strcmp(c, "path_utf8")) {
        result("path_create_directory \"bad\\xff\"",
               raw_path_create_directory(SANDBOX, "bad\xff", 4));
    } else {
        say("unknown case\n");
        return 2;
    }
    return 0;
}
