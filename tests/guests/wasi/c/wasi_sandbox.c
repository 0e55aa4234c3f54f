/* Sandbox escapes from the guest side: every path_* function given a path
 * that leaves the preopen ("..", absolute paths, "a/../../x", symlinks whose
 * targets climb out or are absolute) must fail (wasmtime: EPERM = 63) and
 * must not touch anything outside; paths that wander but stay inside work.
 *
 * Expects in the sandbox: a/file.txt = "inside", a/b/ (empty dir),
 * link_out -> ../outside, link_file_out -> ../outside/secret,
 * link_abs -> /etc, a/link_up2 -> ../.., link_in -> a/b,
 * a/link_sib -> ../a/file.txt; and next to the sandbox outside/secret = "SECRET". */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>

static const __wasi_lookupflags_t FOLLOW = __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW;

/* Try to open PATH and read it; a success prints what was read. */
static void try_open(const char *path, __wasi_lookupflags_t lookup, __wasi_oflags_t oflags) {
    __wasi_fd_t fd;
    __wasi_errno_t e = open_at(SANDBOX, path, lookup, oflags, 0, &fd);
    if (e) { say("path_open %s follow=%u oflags=%u: %u\n", path, (unsigned)lookup,
                 (unsigned)oflags, (unsigned)e); return; }
    char buf[64] = {0};
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf - 1};
    __wasi_size_t n = 0;
    __wasi_errno_t r = __wasi_fd_read(fd, &iov, 1, &n);
    __wasi_fdstat_t fs;
    (void)__wasi_fd_fdstat_get(fd, &fs);
    say("path_open %s follow=%u oflags=%u: 0 type=%u read=%u [%s]\n", path, (unsigned)lookup,
        (unsigned)oflags, (unsigned)fs.fs_filetype, (unsigned)r, r ? "" : buf);
    (void)__wasi_fd_close(fd);
}

static void try_stat(const char *path, __wasi_lookupflags_t lookup) {
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_path_filestat_get(SANDBOX, lookup, path, &st);
    if (e) say("path_filestat_get %s follow=%u: %u\n", path, (unsigned)lookup, (unsigned)e);
    else say("path_filestat_get %s follow=%u: 0 type=%u\n", path, (unsigned)lookup,
             (unsigned)st.filetype);
}

int main(void) {
    say("-- path_open\n");
    const char *paths[] = {
        "..", "../", "../outside/secret", "/etc/passwd", "/", "/sandbox/a/file.txt",
        "a/../../outside/secret", "a/b/../../../outside/secret", "a/../a/file.txt",
        "./a/./b/../file.txt", "link_out/secret", "link_out", "link_file_out", "link_abs/passwd",
        "link_abs", "a/link_up2/outside/secret", "a/link_up2", "link_in", "a/link_sib",
        "link_in/../file.txt", "link_in/../../a/file.txt", "a/b/../../..", ".",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        try_open(paths[i], FOLLOW, 0);
    }
    try_open("link_file_out", 0, 0);
    try_open("link_out/secret", 0, 0);
    try_open("a/link_sib", 0, 0);
    try_open("link_in", FOLLOW, __WASI_OFLAGS_DIRECTORY);
    try_open("link_in", 0, __WASI_OFLAGS_DIRECTORY);
    try_open(".", 0, __WASI_OFLAGS_DIRECTORY);
    try_open("a/b/../..", 0, __WASI_OFLAGS_DIRECTORY);

    say("-- creating outside\n");
    try_open("../created.txt", FOLLOW, __WASI_OFLAGS_CREAT);
    try_open("link_out/created.txt", FOLLOW, __WASI_OFLAGS_CREAT);
    try_open("link_out/secret", FOLLOW, __WASI_OFLAGS_TRUNC);
    try_open("link_file_out", FOLLOW, __WASI_OFLAGS_TRUNC);
    try_open("a/link_up2/outside/new.txt", FOLLOW, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL);
    show("path_create_directory ../newdir", __wasi_path_create_directory(SANDBOX, "../newdir"));
    show("path_create_directory link_out/newdir",
         __wasi_path_create_directory(SANDBOX, "link_out/newdir"));
    show("path_create_directory /abs", __wasi_path_create_directory(SANDBOX, "/abs"));
    show("path_symlink ../sl", __wasi_path_symlink("a", SANDBOX, "../sl"));
    show("path_symlink link_out/sl", __wasi_path_symlink("a", SANDBOX, "link_out/sl"));
    show("path_link to ../hard", __wasi_path_link(SANDBOX, 0, "a/file.txt", SANDBOX, "../hard"));
    show("path_link from ../outside/secret",
         __wasi_path_link(SANDBOX, 0, "../outside/secret", SANDBOX, "stolen_link"));
    show("path_link follow link_file_out",
         __wasi_path_link(SANDBOX, FOLLOW, "link_file_out", SANDBOX, "stolen_link2"));
    show("path_rename to ../moved",
         __wasi_path_rename(SANDBOX, "a/file.txt", SANDBOX, "../moved"));
    show("path_rename from ../outside/secret",
         __wasi_path_rename(SANDBOX, "../outside/secret", SANDBOX, "stolen"));
    show("path_rename from link_out/secret",
         __wasi_path_rename(SANDBOX, "link_out/secret", SANDBOX, "stolen"));

    say("-- removing outside\n");
    show("path_unlink_file ../outside/secret",
         __wasi_path_unlink_file(SANDBOX, "../outside/secret"));
    show("path_unlink_file link_out/secret", __wasi_path_unlink_file(SANDBOX, "link_out/secret"));
    show("path_unlink_file a/link_up2/outside/secret",
         __wasi_path_unlink_file(SANDBOX, "a/link_up2/outside/secret"));
    show("path_remove_directory ../outside", __wasi_path_remove_directory(SANDBOX, "../outside"));
    show("path_remove_directory ..", __wasi_path_remove_directory(SANDBOX, ".."));

    say("-- metadata outside\n");
    try_stat("..", 0);
    try_stat("../outside/secret", 0);
    try_stat("/etc/passwd", 0);
    try_stat("link_out", 0);
    try_stat("link_out", FOLLOW);
    try_stat("link_abs", 0);
    try_stat("link_abs", FOLLOW);
    try_stat("link_file_out", FOLLOW);
    try_stat("a/link_sib", FOLLOW);
    show("path_filestat_set_times link_file_out",
         __wasi_path_filestat_set_times(SANDBOX, FOLLOW, "link_file_out", 1, 1,
                                        __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    show("path_filestat_set_times ../outside/secret",
         __wasi_path_filestat_set_times(SANDBOX, 0, "../outside/secret", 1, 1,
                                        __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    char buf[64];
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_path_readlink(SANDBOX, "link_out", (uint8_t *)buf, sizeof buf, &n);
    say("path_readlink link_out: %u [%.*s]\n", (unsigned)e, e ? 0 : (int)n, buf);
    e = __wasi_path_readlink(SANDBOX, "../outside", (uint8_t *)buf, sizeof buf, &n);
    say("path_readlink ../outside: %u\n", (unsigned)e);

    say("-- new symlinks pointing out\n");
    show("path_symlink made_out -> ../outside/secret",
         __wasi_path_symlink("../outside/secret", SANDBOX, "made_out"));
    try_open("made_out", FOLLOW, 0);
    show("path_symlink a/b/deep_out -> ../../../outside",
         __wasi_path_symlink("../../../outside", SANDBOX, "a/b/deep_out"));
    try_open("a/b/deep_out/secret", FOLLOW, 0);
    show("path_symlink made_abs -> /etc/passwd",
         __wasi_path_symlink("/etc/passwd", SANDBOX, "made_abs"));
    try_open("made_abs", FOLLOW, 0);

    say("-- directory fd below the preopen\n");
    __wasi_fd_t a;
    show("open a", open_at(SANDBOX, "a", 0, __WASI_OFLAGS_DIRECTORY, 0, &a));
    __wasi_fd_t fd;
    show("path_open ../a/file.txt from a", open_at(a, "../a/file.txt", FOLLOW, 0, 0, &fd));
    show("path_open link_sib from a", open_at(a, "link_sib", FOLLOW, 0, 0, &fd));
    show("path_open file.txt from a", open_at(a, "file.txt", FOLLOW, 0, 0, &fd));
    (void)__wasi_fd_close(fd);
    show("path_open b/.. from a", open_at(a, "b/..", FOLLOW, __WASI_OFLAGS_DIRECTORY, 0, &fd));
    (void)__wasi_fd_close(fd);
    (void)__wasi_fd_close(a);

    say("-- wasi-libc paths\n");
    errno = 0;
    int pfd = open("/etc/passwd", O_RDONLY);
    say("open /etc/passwd: %d errno=%d\n", pfd, errno);
    errno = 0;
    pfd = open("/sandbox/../outside/secret", O_RDONLY);
    say("open /sandbox/../outside/secret: %d errno=%d\n", pfd, errno);
    errno = 0;
    pfd = open("/sandbox/link_out/secret", O_RDONLY);
    say("open /sandbox/link_out/secret: %d errno=%d\n", pfd, errno);
    errno = 0;
    pfd = open("/sandbox/a/file.txt", O_RDONLY);
    say("open /sandbox/a/file.txt: ok=%d\n", pfd >= 0);
    return 0;
}
