/* Path operations: path_rename, path_link, path_symlink, path_readlink,
 * path_unlink_file, path_filestat_set_times, fd_filestat_set_times (and the
 * path_filestat_get / fd_filestat_get that check them), through wasi-libc
 * (rename, link, symlink, readlink, unlink, utimensat, futimens) and directly.
 *
 * Expects in the sandbox: f1.txt = "one", f2.txt = "two", d1/x.txt = "x",
 * d2/ (empty), d3/y.txt = "y". */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

static void show_times(const char *path, __wasi_lookupflags_t flags) {
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_path_filestat_get(SANDBOX, flags, path, &st);
    if (e) say("times %s: errno %u\n", path, (unsigned)e);
    else say("times %s: atim=%llu mtim=%llu\n", path, (unsigned long long)st.atim,
             (unsigned long long)st.mtim);
}

static __wasi_timestamp_t now_realtime(void) {
    __wasi_timestamp_t t = 0;
    (void)__wasi_clock_time_get(__WASI_CLOCKID_REALTIME, 1, &t);
    return t;
}

static void readlink_direct(const char *path, size_t cap) {
    char buf[128];
    memset(buf, '#', sizeof buf);
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_path_readlink(SANDBOX, path, (uint8_t *)buf, cap, &n);
    if (e) say("path_readlink %s cap=%zu: errno %u\n", path, cap, (unsigned)e);
    else say("path_readlink %s cap=%zu: n=%u [%.*s] next=%c\n", path, cap, (unsigned)n, (int)n,
             buf, buf[n]);
}

static void renames(void) {
    say("-- rename\n");
    say("rename posix f1 -> g1: %d\n", rename("/sandbox/f1.txt", "/sandbox/g1.txt"));
    show_file("g1.txt");
    show_file("f1.txt");
    show("path_rename over existing file", __wasi_path_rename(SANDBOX, "g1.txt", SANDBOX, "f2.txt"));
    show_file("f2.txt");
    show("path_rename missing source", __wasi_path_rename(SANDBOX, "g1.txt", SANDBOX, "h.txt"));
    show("path_rename into missing dir",
         __wasi_path_rename(SANDBOX, "f2.txt", SANDBOX, "nodir/f2.txt"));
    show("path_rename file into dir", __wasi_path_rename(SANDBOX, "f2.txt", SANDBOX, "d1/f2.txt"));
    show_file("d1/f2.txt");
    show("path_rename file onto dir", __wasi_path_rename(SANDBOX, "d1/f2.txt", SANDBOX, "d2"));
    show("path_rename dir onto file", __wasi_path_rename(SANDBOX, "d2", SANDBOX, "d1/x.txt"));
    show("path_rename dir onto non-empty dir", __wasi_path_rename(SANDBOX, "d2", SANDBOX, "d3"));
    show("path_rename dir onto empty dir", __wasi_path_rename(SANDBOX, "d3", SANDBOX, "d2"));
    show_file("d2/y.txt");
    show("path_rename dir into itself", __wasi_path_rename(SANDBOX, "d1", SANDBOX, "d1/sub"));
    show("path_rename same name", __wasi_path_rename(SANDBOX, "d1/x.txt", SANDBOX, "d1/x.txt"));
    show("path_rename bad old fd", __wasi_path_rename(BAD_FD, "d1", SANDBOX, "z"));
    show("path_rename bad new fd", __wasi_path_rename(SANDBOX, "d1", BAD_FD, "z"));
    __wasi_fd_t d1;
    show("open d1", open_at(SANDBOX, "d1", 0, __WASI_OFLAGS_DIRECTORY, 0, &d1));
    show("path_rename between dir fds", __wasi_path_rename(d1, "x.txt", SANDBOX, "moved.txt"));
    show_file("moved.txt");
    (void)__wasi_fd_close(d1);
}

static void links(void) {
    say("-- link\n");
    say("link posix: %d\n", link("/sandbox/moved.txt", "/sandbox/hard.txt"));
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_path_filestat_get(SANDBOX, 0, "moved.txt", &st);
    say("nlink after link: %u %llu\n", (unsigned)e, (unsigned long long)st.nlink);
    show("path_link again", __wasi_path_link(SANDBOX, 0, "moved.txt", SANDBOX, "hard.txt"));
    show("path_link missing", __wasi_path_link(SANDBOX, 0, "none.txt", SANDBOX, "hard2.txt"));
    show("path_link dir", __wasi_path_link(SANDBOX, 0, "d2", SANDBOX, "d2link"));
    show("path_link into missing dir",
         __wasi_path_link(SANDBOX, 0, "moved.txt", SANDBOX, "nodir/h"));
    show("path_link bad fd", __wasi_path_link(BAD_FD, 0, "moved.txt", SANDBOX, "h3"));
    __wasi_fd_t fd;
    e = open_at(SANDBOX, "hard.txt", 0, 0, __WASI_FDFLAGS_APPEND, &fd);
    __wasi_size_t n;
    e = put(fd, "+shared", 7, &n);
    say("write through hard link: %u\n", (unsigned)e);
    (void)__wasi_fd_close(fd);
    show_file("moved.txt");
    e = open_at(SANDBOX, "moved.txt", 0, 0, 0, &fd);
    e = __wasi_fd_filestat_get(fd, &st);
    say("fd nlink: %u %llu\n", (unsigned)e, (unsigned long long)st.nlink);
    (void)__wasi_fd_close(fd);
}

static void symlinks(void) {
    say("-- symlink\n");
    say("symlink posix: %d\n", symlink("moved.txt", "/sandbox/sym"));
    show("path_symlink dangling", __wasi_path_symlink("does/not/exist", SANDBOX, "dangling"));
    show("path_symlink to dir", __wasi_path_symlink("d2", SANDBOX, "dirsym"));
    show("path_symlink existing name", __wasi_path_symlink("x", SANDBOX, "sym"));
    show("path_symlink over file", __wasi_path_symlink("x", SANDBOX, "hard.txt"));
    show("path_symlink in missing dir", __wasi_path_symlink("x", SANDBOX, "nodir/s"));
    show("path_symlink bad fd", __wasi_path_symlink("x", BAD_FD, "s"));
    show("path_symlink nested", __wasi_path_symlink("../moved.txt", SANDBOX, "d2/up"));
    show_file("sym");
    show_file("d2/up");
    show_file("dangling");
    show_file("dirsym/y.txt");
    readlink_direct("sym", 64);
    readlink_direct("sym", 9);
    readlink_direct("sym", 4);
    readlink_direct("dangling", 64);
    readlink_direct("d2/up", 64);
    readlink_direct("moved.txt", 64);
    readlink_direct("d2", 64);
    readlink_direct("nothing", 64);
    readlink_direct("dirsym/", 64);
    {
        __wasi_size_t n;
        char b[8];
        show("path_readlink bad fd", __wasi_path_readlink(BAD_FD, "sym", (uint8_t *)b, 8, &n));
    }
    char buf[64] = {0};
    ssize_t r = readlink("/sandbox/dangling", buf, sizeof buf);
    say("readlink posix: %zd [%.*s]\n", r, (int)(r > 0 ? r : 0), buf);
    __wasi_fd_t fd;
    show("path_open dangling creat", open_at(SANDBOX, "dangling", __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW,
                                             __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, 0, &fd));
    show("path_open symlink nofollow", open_at(SANDBOX, "sym", 0, 0, 0, &fd));
    show("path_open symlink follow", open_at(SANDBOX, "sym", __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW,
                                             0, 0, &fd));
    (void)__wasi_fd_close(fd);
    show("path_open dir symlink nofollow",
         open_at(SANDBOX, "dirsym", 0, __WASI_OFLAGS_DIRECTORY, 0, &fd));
    show("path_open through dir symlink",
         open_at(SANDBOX, "dirsym/y.txt", 0, 0, 0, &fd));
    (void)__wasi_fd_close(fd);
    show("path_symlink empty target", __wasi_path_symlink("", SANDBOX, "empty_target"));
    show("path_symlink empty name", __wasi_path_symlink("x", SANDBOX, ""));
    {
        /* A trailing slash on a new name that is not a directory must be refused.  Each
         * attempt works on a scratch file, and whatever it created is removed unprinted. */
        __wasi_fd_t t;
        show("make victim.txt", make_file("victim.txt", "victim"));
        show("path_symlink trailing slash name", __wasi_path_symlink("x", SANDBOX, "slashy/"));
        show("path_open creat file/", open_at(SANDBOX, "tslash/", 0, __WASI_OFLAGS_CREAT, 0, &t));
        show("path_link new name with slash",
             __wasi_path_link(SANDBOX, 0, "victim.txt", SANDBOX, "hl/"));
        show("path_rename file to name with slash",
             __wasi_path_rename(SANDBOX, "victim.txt", SANDBOX, "rn/"));
        const char *junk[] = {"victim.txt", "slashy", "tslash", "hl", "rn"};
        for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
            (void)__wasi_path_unlink_file(SANDBOX, junk[i]);
        show("path_symlink to_be_created", __wasi_path_symlink("created_through_link.txt",
                                                               SANDBOX, "pending"));
        show("path_open creat through dangling symlink",
             open_at(SANDBOX, "pending", __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, __WASI_OFLAGS_CREAT,
                     0, &t));
        (void)__wasi_fd_close(t);
        __wasi_filestat_t st;
        show("path_filestat_get dangling follow",
             __wasi_path_filestat_get(SANDBOX, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "dangling", &st));
    }
    show("path_symlink loop a", __wasi_path_symlink("loopb", SANDBOX, "loopa"));
    show("path_symlink loop b", __wasi_path_symlink("loopa", SANDBOX, "loopb"));
    show("path_open loop", open_at(SANDBOX, "loopa", __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, 0, 0, &fd));
    __wasi_filestat_t st;
    show("path_filestat_get loop follow",
         __wasi_path_filestat_get(SANDBOX, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "loopa", &st));
    show("path_filestat_get loop nofollow", __wasi_path_filestat_get(SANDBOX, 0, "loopa", &st));
}

static void unlinks(void) {
    say("-- unlink\n");
    show("path_rename onto own hard link", __wasi_path_rename(SANDBOX, "hard.txt", SANDBOX,
                                                              "moved.txt"));
    show("path_rename symlink", __wasi_path_rename(SANDBOX, "dangling", SANDBOX, "dangling2"));
    show("path_rename back", __wasi_path_rename(SANDBOX, "dangling2", SANDBOX, "dangling"));
    show("path_rename file with trailing slash",
         __wasi_path_rename(SANDBOX, "moved.txt/", SANDBOX, "m2.txt"));
    show("path_rename dir with trailing slashes", __wasi_path_rename(SANDBOX, "d2/", SANDBOX,
                                                                   "d4/"));
    show("path_rename dir back", __wasi_path_rename(SANDBOX, "d4", SANDBOX, "d2"));
    say("unlink posix: %d\n", unlink("/sandbox/hard.txt"));
    errno = 0;
    say("unlink posix missing: %d errno=%d\n", unlink("/sandbox/hard.txt"), errno);
    show("path_unlink_file symlink", __wasi_path_unlink_file(SANDBOX, "sym"));
    show_file("moved.txt");
    show("path_unlink_file dir", __wasi_path_unlink_file(SANDBOX, "d2"));
    show("path_unlink_file dir symlink", __wasi_path_unlink_file(SANDBOX, "dirsym"));
    show("path_unlink_file file/", __wasi_path_unlink_file(SANDBOX, "moved.txt/"));
    show("path_unlink_file missing", __wasi_path_unlink_file(SANDBOX, "nope"));
    show("path_unlink_file in missing dir", __wasi_path_unlink_file(SANDBOX, "nodir/x"));
    show("path_unlink_file loop", __wasi_path_unlink_file(SANDBOX, "loopb"));
    show("path_unlink_file bad fd", __wasi_path_unlink_file(BAD_FD, "moved.txt"));
    show("path_unlink_file empty", __wasi_path_unlink_file(SANDBOX, ""));
}

static void times(void) {
    say("-- times\n");
    const __wasi_timestamp_t T1 = 1000000000ull * 1000000000ull + 123456789ull; /* 2001 */
    const __wasi_timestamp_t T2 = 1500000000ull * 1000000000ull + 5000ull;
    const __wasi_timestamp_t T3 = 1600000000ull * 1000000000ull;
    show("path_filestat_set_times both",
         __wasi_path_filestat_set_times(SANDBOX, 0, "moved.txt", T1, T2,
                                        __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    show_times("moved.txt", 0);
    show("path_filestat_set_times mtim only",
         __wasi_path_filestat_set_times(SANDBOX, 0, "moved.txt", 0, T3, __WASI_FSTFLAGS_MTIM));
    show_times("moved.txt", 0);
    show("path_filestat_set_times none",
         __wasi_path_filestat_set_times(SANDBOX, 0, "moved.txt", 5, 5, 0));
    show_times("moved.txt", 0);
    show("path_filestat_set_times atim+atim_now",
         __wasi_path_filestat_set_times(SANDBOX, 0, "moved.txt", T1, 0,
                                        __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW));
    show("path_filestat_set_times mtim+mtim_now",
         __wasi_path_filestat_set_times(SANDBOX, 0, "moved.txt", 0, T1,
                                        __WASI_FSTFLAGS_MTIM | __WASI_FSTFLAGS_MTIM_NOW));
    show_times("moved.txt", 0);
    __wasi_timestamp_t before = now_realtime();
    show("path_filestat_set_times mtim_now",
         __wasi_path_filestat_set_times(SANDBOX, 0, "moved.txt", 0, 0, __WASI_FSTFLAGS_MTIM_NOW));
    __wasi_timestamp_t after = now_realtime();
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_path_filestat_get(SANDBOX, 0, "moved.txt", &st);
    /* Allow for a coarse file system clock (10 ms). */
    say("mtim now: %u in range=%d atim kept=%d\n", (unsigned)e,
        st.mtim + 10000000ull >= before && st.mtim <= after + 10000000ull, st.atim == T1);
    show("path_filestat_set_times missing",
         __wasi_path_filestat_set_times(SANDBOX, 0, "nope", T1, T1, __WASI_FSTFLAGS_ATIM));
    show("path_filestat_set_times bad fd",
         __wasi_path_filestat_set_times(BAD_FD, 0, "moved.txt", T1, T1, __WASI_FSTFLAGS_ATIM));
    show("path_filestat_set_times dir",
         __wasi_path_filestat_set_times(SANDBOX, 0, "d2", T2, T3,
                                        __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    show_times("d2", 0);
    /* Through a symlink: with SYMLINK_FOLLOW the target changes. */
    show("path_symlink timelink", __wasi_path_symlink("d1", SANDBOX, "timelink"));
    show("path_filestat_set_times follow",
         __wasi_path_filestat_set_times(SANDBOX, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "timelink",
                                        T3, T2, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    show_times("d1", 0);

    __wasi_fd_t fd;
    e = open_at(SANDBOX, "d2/y.txt", 0, 0, 0, &fd);
    show("fd_filestat_set_times both",
         __wasi_fd_filestat_set_times(fd, T2, T1, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    e = __wasi_fd_filestat_get(fd, &st);
    say("fd times: atim=%llu mtim=%llu\n", (unsigned long long)st.atim,
        (unsigned long long)st.mtim);
    show("fd_filestat_set_times atim+atim_now",
         __wasi_fd_filestat_set_times(fd, T2, 0, __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW));
    before = now_realtime();
    show("fd_filestat_set_times atim_now",
         __wasi_fd_filestat_set_times(fd, 0, 0, __WASI_FSTFLAGS_ATIM_NOW));
    after = now_realtime();
    e = __wasi_fd_filestat_get(fd, &st);
    say("atim now: %u in range=%d mtim kept=%d\n", (unsigned)e,
        st.atim + 10000000ull >= before && st.atim <= after + 10000000ull, st.mtim == T1);
    show("fd_filestat_set_times bad fd", __wasi_fd_filestat_set_times(BAD_FD, 0, 0, 0));
    (void)__wasi_fd_close(fd);

    struct timespec ts[2] = {{12345, 678}, {23456, 789}};
    say("utimensat posix: %d\n", utimensat(AT_FDCWD, "/sandbox/d1/f2.txt", ts, 0));
    show_times("d1/f2.txt", 0);
    int pfd = open("/sandbox/d1/f2.txt", O_RDONLY);
    struct timespec ts2[2] = {{0, UTIME_OMIT}, {777, 0}};
    say("futimens posix: %d\n", futimens(pfd, ts2));
    close(pfd);
    show_times("d1/f2.txt", 0);
}

int main(void) {
    renames();
    links();
    symlinks();
    unlinks();
    times();
    return 0;
}
