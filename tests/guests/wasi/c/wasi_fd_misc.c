/* Descriptor table operations: fd_prestat_get, fd_prestat_dir_name (two
 * preopens), fd_renumber, fd_fdstat_get, fd_fdstat_set_rights, fd_close;
 * sock_accept, sock_recv, sock_send, sock_shutdown on descriptors that are
 * not sockets; and every fd-taking function on a descriptor that is not open
 * (99) or was closed.
 *
 * Expects preopens "/sandbox" (fd 3) and "/other" (fd 4), and in the sandbox
 * one.txt = "first file", two.txt = "second file". */
#include "guest.h"

static void prestat(__wasi_fd_t fd) {
    __wasi_prestat_t ps;
    memset(&ps, 0xAA, sizeof ps);
    __wasi_errno_t e = __wasi_fd_prestat_get(fd, &ps);
    if (e) { say("fd_prestat_get %u: %u\n", (unsigned)fd, (unsigned)e); return; }
    say("fd_prestat_get %u: 0 tag=%u len=%u\n", (unsigned)fd, (unsigned)ps.tag,
        (unsigned)ps.u.dir.pr_name_len);
    char name[64];
    memset(name, '#', sizeof name);
    e = __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, ps.u.dir.pr_name_len);
    say("fd_prestat_dir_name %u: %u [%.*s] next=%c\n", (unsigned)fd, (unsigned)e,
        (int)ps.u.dir.pr_name_len, name, name[ps.u.dir.pr_name_len]);
    memset(name, '#', sizeof name);
    e = __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, sizeof name);
    say("fd_prestat_dir_name %u big buffer: %u [%.*s]\n", (unsigned)fd, (unsigned)e,
        (int)ps.u.dir.pr_name_len, name);
}

static void read_fd(const char *label, __wasi_fd_t fd) {
    char buf[64] = {0};
    __wasi_filesize_t pos;
    __wasi_errno_t e = __wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &pos);
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf - 1};
    __wasi_size_t n = 0;
    if (!e) e = __wasi_fd_read(fd, &iov, 1, &n);
    say("%s: read fd: %u [%s]\n", label, (unsigned)e, e ? "" : buf);
}

/* Every function that takes a descriptor, called on FD; prints the errnos. */
static void sweep(const char *label, __wasi_fd_t fd) {
    uint8_t buf[64];
    __wasi_iovec_t iov = {buf, sizeof buf};
    __wasi_ciovec_t ciov = {buf, 4};
    __wasi_size_t n;
    __wasi_filesize_t off;
    __wasi_fdstat_t fs;
    __wasi_filestat_t st;
    __wasi_prestat_t ps;
    __wasi_fd_t nfd;
    __wasi_roflags_t ro;
    say("sweep %s:", label);
    say(" advise=%u", (unsigned)__wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_NORMAL));
    say(" allocate=%u", (unsigned)__wasi_fd_allocate(fd, 0, 1));
    say(" datasync=%u", (unsigned)__wasi_fd_datasync(fd));
    say(" fdstat_get=%u", (unsigned)__wasi_fd_fdstat_get(fd, &fs));
    say(" set_flags=%u", (unsigned)__wasi_fd_fdstat_set_flags(fd, 0));
    say(" set_rights=%u", (unsigned)__wasi_fd_fdstat_set_rights(fd, 0, 0));
    say(" filestat_get=%u", (unsigned)__wasi_fd_filestat_get(fd, &st));
    say(" set_size=%u", (unsigned)__wasi_fd_filestat_set_size(fd, 0));
    say(" set_times=%u", (unsigned)__wasi_fd_filestat_set_times(fd, 0, 0, 0));
    say(" pread=%u", (unsigned)__wasi_fd_pread(fd, &iov, 1, 0, &n));
    say(" prestat_get=%u", (unsigned)__wasi_fd_prestat_get(fd, &ps));
    say(" prestat_dir_name=%u", (unsigned)__wasi_fd_prestat_dir_name(fd, buf, 4));
    say(" pwrite=%u", (unsigned)__wasi_fd_pwrite(fd, &ciov, 1, 0, &n));
    say(" read=%u", (unsigned)__wasi_fd_read(fd, &iov, 1, &n));
    say(" readdir=%u", (unsigned)__wasi_fd_readdir(fd, buf, sizeof buf, 0, &n));
    say(" renumber_from=%u", (unsigned)__wasi_fd_renumber(fd, 1));
    say(" renumber_to=%u", (unsigned)__wasi_fd_renumber(1, fd));
    say(" seek=%u", (unsigned)__wasi_fd_seek(fd, 0, __WASI_WHENCE_SET, &off));
    say(" sync=%u", (unsigned)__wasi_fd_sync(fd));
    say(" tell=%u", (unsigned)__wasi_fd_tell(fd, &off));
    say(" write=%u", (unsigned)__wasi_fd_write(fd, &ciov, 1, &n));
    say(" close=%u", (unsigned)__wasi_fd_close(fd));
    say("\n sweep %s paths:", label);
    say(" create_directory=%u", (unsigned)__wasi_path_create_directory(fd, "x"));
    say(" filestat_get=%u", (unsigned)__wasi_path_filestat_get(fd, 0, "x", &st));
    say(" set_times=%u", (unsigned)__wasi_path_filestat_set_times(fd, 0, "x", 0, 0, 0));
    say(" link_old=%u", (unsigned)__wasi_path_link(fd, 0, "x", SANDBOX, "y"));
    say(" link_new=%u", (unsigned)__wasi_path_link(SANDBOX, 0, "one.txt", fd, "y"));
    say(" open=%u", (unsigned)open_at(fd, "x", 0, 0, 0, &nfd));
    say(" readlink=%u", (unsigned)__wasi_path_readlink(fd, "x", buf, sizeof buf, &n));
    say(" remove_directory=%u", (unsigned)__wasi_path_remove_directory(fd, "x"));
    say(" rename_old=%u", (unsigned)__wasi_path_rename(fd, "x", SANDBOX, "y"));
    say(" rename_new=%u", (unsigned)__wasi_path_rename(SANDBOX, "nothing", fd, "y"));
    say(" symlink=%u", (unsigned)__wasi_path_symlink("x", fd, "y"));
    say(" unlink_file=%u", (unsigned)__wasi_path_unlink_file(fd, "x"));
    say("\n sweep %s sockets:", label);
    say(" sock_accept=%u", (unsigned)__wasi_sock_accept(fd, 0, &nfd));
    say(" sock_recv=%u", (unsigned)__wasi_sock_recv(fd, &iov, 1, 0, &n, &ro));
    say(" sock_send=%u", (unsigned)__wasi_sock_send(fd, &ciov, 1, 0, &n));
    say(" sock_shutdown=%u", (unsigned)__wasi_sock_shutdown(fd, __WASI_SDFLAGS_RD));
    say("\n");
}

static void sockets_on(const char *label, __wasi_fd_t fd) {
    uint8_t buf[16];
    __wasi_iovec_t iov = {buf, sizeof buf};
    __wasi_ciovec_t ciov = {(const uint8_t *)"data", 4};
    __wasi_size_t n;
    __wasi_roflags_t ro;
    __wasi_fd_t nfd;
    say("sockets on %s: accept=%u recv=%u send=%u shutdown=%u\n", label,
        (unsigned)__wasi_sock_accept(fd, 0, &nfd),
        (unsigned)__wasi_sock_recv(fd, &iov, 1, 0, &n, &ro),
        (unsigned)__wasi_sock_send(fd, &ciov, 1, 0, &n),
        (unsigned)__wasi_sock_shutdown(fd, __WASI_SDFLAGS_RD | __WASI_SDFLAGS_WR));
}

int main(void) {
    say("-- prestat\n");
    for (__wasi_fd_t fd = 0; fd < 6; fd++) prestat(fd);
    {
        char small[2];
        show("fd_prestat_dir_name buffer too small",
             __wasi_fd_prestat_dir_name(3, (uint8_t *)small, sizeof small));
    }

    say("-- fdstat\n");
    __wasi_fdstat_t fs;
    __wasi_errno_t e = __wasi_fd_fdstat_get(3, &fs);
    say("fd_fdstat_get preopen: %u type=%u flags=%u\n", (unsigned)e, (unsigned)fs.fs_filetype,
        (unsigned)fs.fs_flags);
    for (__wasi_fd_t fd = 0; fd < 3; fd++) {
        e = __wasi_fd_fdstat_get(fd, &fs);
        say("fd_fdstat_get %u: %u\n", (unsigned)fd, (unsigned)e);
    }

    say("-- renumber\n");
    __wasi_fd_t one, two;
    show("open one", open_at(SANDBOX, "one.txt", 0, 0, 0, &one));
    show("open two", open_at(SANDBOX, "two.txt", 0, 0, 0, &two));
    say("distinct new fds above preopens: %d\n", one > 4 && two > 4 && one != two);
    show("fd_renumber same fd", __wasi_fd_renumber(one, one));
    read_fd("one after self-renumber", one);
    show("fd_renumber one -> two", __wasi_fd_renumber(one, two));
    read_fd("two now", two);
    read_fd("one now", one);
    show("fd_close old one", __wasi_fd_close(one));
    show("fd_renumber closed -> two", __wasi_fd_renumber(one, two));
    show("fd_renumber two -> not open", __wasi_fd_renumber(two, 77));
    read_fd("two still", two);
    __wasi_fd_t again;
    show("open again", open_at(SANDBOX, "one.txt", 0, 0, 0, &again));
    read_fd("reopened", again);
    (void)__wasi_fd_close(again);

    say("-- rights\n");
    e = __wasi_fd_fdstat_get(two, &fs);
    say("fd_fdstat_get file: %u type=%u read_right=%d\n", (unsigned)e, (unsigned)fs.fs_filetype,
        (fs.fs_rights_base & __WASI_RIGHTS_FD_READ) != 0);
    show("fd_fdstat_set_rights same", __wasi_fd_fdstat_set_rights(two, fs.fs_rights_base,
                                                                  fs.fs_rights_inheriting));
    read_fd("after set_rights same", two);
    show("fd_fdstat_set_rights bad fd", __wasi_fd_fdstat_set_rights(BAD_FD, 0, 0));
    (void)__wasi_fd_close(two);

    say("-- sockets\n");
    sockets_on("bad fd", BAD_FD);
    show("open one", open_at(SANDBOX, "one.txt", 0, 0, 0, &one));
    sockets_on("regular file", one);
    read_fd("file after socket calls", one);
    (void)__wasi_fd_close(one);
    sockets_on("preopen dir", SANDBOX);

    say("-- two preopens\n");
    show("path_rename across preopens",
         __wasi_path_rename(SANDBOX, "two.txt", 4, "two-moved.txt"));
    show("path_link across preopens",
         __wasi_path_link(SANDBOX, 0, "one.txt", 4, "one-linked.txt"));
    show("path_symlink in other", __wasi_path_symlink("../sandbox/one.txt", 4, "escape"));
    show("path_open through it", open_at(4, "escape", __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, 0, 0,
                                         &one));
    show("open one", open_at(SANDBOX, "one.txt", 0, 0, 0, &one));
    show("fd_renumber file onto preopen 4", __wasi_fd_renumber(one, 4));
    prestat(4);
    read_fd("fd 4 now", 4);
    show("path_create_directory on fd 4", __wasi_path_create_directory(4, "x"));
    show("fd_close 4", __wasi_fd_close(4));
    prestat(4);

    say("-- sweeps\n");
    sweep("99", BAD_FD);
    show("open one", open_at(SANDBOX, "one.txt", 0, 0, 0, &one));
    (void)__wasi_fd_close(one);
    sweep("closed", one);
    show_file("one.txt");
    show_file("two.txt");
    show_file("one.txt");
    return 0;
}
