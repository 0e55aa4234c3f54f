/* Directories: path_create_directory, path_remove_directory, fd_readdir
 * (through opendir/readdir and directly, with small buffers and cookies),
 * path_filestat_get (follow / nofollow), fd_filestat_get on a directory,
 * and path_open with O_DIRECTORY.
 *
 * Expects in the sandbox: tree/a.txt = "A", tree/b.txt = "BB",
 * tree/sub/inner.txt = "inner", tree/link -> a.txt, tree/empty/. */
#include "guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MAX_NAMES 128

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* POSIX listing: opendir/readdir, sorted, with d_type; "." and ".." are
 * reported separately. */
static void list_posix(const char *path) {
    DIR *d = opendir(path);
    if (!d) { say("opendir %s: errno %d\n", path, errno); return; }
    char *names[MAX_NAMES];
    int count = 0, dot = 0, dotdot = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && count < MAX_NAMES) {
        if (strcmp(ent->d_name, ".") == 0) { dot++; continue; }
        if (strcmp(ent->d_name, "..") == 0) { dotdot++; continue; }
        char *s = malloc(strlen(ent->d_name) + 8);
        snprintf(s, strlen(ent->d_name) + 8, "%s:%u", ent->d_name, (unsigned)ent->d_type);
        names[count++] = s;
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof *names, cmp_str);
    say("readdir %s (%d):", path, count);
    for (int i = 0; i < count; i++) { say(" %s", names[i]); free(names[i]); }
    say("\n");
    say("readdir %s: dot=%d dotdot=%d\n", path, dot, dotdot);
}

/* Direct fd_readdir with a buffer of BUFSIZE bytes, following d_next cookies
 * until a call fills less than the buffer.  Prints the sorted names, whether
 * every entry was seen exactly once, and the header fields that are defined. */
static void list_direct(__wasi_fd_t dir, size_t bufsize, int verbose) {
    static uint8_t buf[4096];
    char *names[MAX_NAMES];
    int count = 0, calls = 0, bad = 0;
    __wasi_dircookie_t cookie = __WASI_DIRCOOKIE_START;
    for (;;) {
        __wasi_size_t used = 0;
        __wasi_errno_t e = __wasi_fd_readdir(dir, buf, bufsize, cookie, &used);
        calls++;
        if (e) { say("fd_readdir errno %u\n", (unsigned)e); return; }
        if (used > bufsize) bad++;
        size_t pos = 0;
        int progressed = 0;
        while (pos + sizeof(__wasi_dirent_t) <= used) {
            __wasi_dirent_t ent;
            memcpy(&ent, buf + pos, sizeof ent);
            pos += sizeof ent;
            if (pos + ent.d_namlen > used) break; /* truncated name: read again */
            char name[256];
            size_t len = ent.d_namlen < 255 ? ent.d_namlen : 255;
            memcpy(name, buf + pos, len);
            name[len] = 0;
            pos += ent.d_namlen;
            cookie = ent.d_next;
            progressed = 1;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
            if (count < MAX_NAMES) {
                char *s = malloc(len + 8);
                snprintf(s, len + 8, "%s:%u", name, (unsigned)ent.d_type);
                names[count++] = s;
            }
        }
        if (used < bufsize) break;
        if (!progressed) { say("fd_readdir: buffer %zu too small for one entry\n", bufsize); break; }
        if (calls > 1000) { say("fd_readdir: no end\n"); break; }
    }
    qsort(names, (size_t)count, sizeof *names, cmp_str);
    int dups = 0;
    for (int i = 1; i < count; i++) dups += strcmp(names[i - 1], names[i]) == 0;
    say("fd_readdir buf=%zu: %d entries, dups=%d, overflow=%d, several calls=%d\n", bufsize,
        count, dups, bad, calls > 1);
    if (verbose) {
        say(" ");
        for (int i = 0; i < count; i++) say(" %s", names[i]);
        say("\n");
    }
    for (int i = 0; i < count; i++) free(names[i]);
}

static void show_pathstat(const char *path, __wasi_lookupflags_t flags) {
    __wasi_filestat_t st;
    __wasi_errno_t e = __wasi_path_filestat_get(SANDBOX, flags, path, &st);
    if (e) say("path_filestat_get %s follow=%u: errno %u\n", path, (unsigned)flags, (unsigned)e);
    else if (st.filetype == __WASI_FILETYPE_REGULAR_FILE)
        say("path_filestat_get %s follow=%u: type=%u size=%llu nlink=%llu\n", path,
            (unsigned)flags, (unsigned)st.filetype, (unsigned long long)st.size,
            (unsigned long long)st.nlink);
    else if (st.filetype == __WASI_FILETYPE_SYMBOLIC_LINK)
        say("path_filestat_get %s follow=%u: type=%u size=%llu\n", path, (unsigned)flags,
            (unsigned)st.filetype, (unsigned long long)st.size);
    else
        say("path_filestat_get %s follow=%u: type=%u\n", path, (unsigned)flags,
            (unsigned)st.filetype);
}

int main(void) {
    list_posix("/sandbox/tree");
    list_posix("/sandbox/tree/empty");
    list_posix("/sandbox/tree/sub");
    errno = 0;
    say("opendir file -> %d errno=%d\n", opendir("/sandbox/tree/a.txt") != NULL, errno);
    errno = 0;
    say("opendir missing -> %d errno=%d\n", opendir("/sandbox/tree/nope") != NULL, errno);

    const __wasi_lookupflags_t F = __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW;
    show_pathstat("tree", 0);
    show_pathstat("tree/a.txt", 0);
    show_pathstat("tree/b.txt", F);
    show_pathstat("tree/link", 0);
    show_pathstat("tree/link", F);
    show_pathstat("tree/nope", 0);
    show_pathstat("tree/a.txt/x", 0);
    show_pathstat("tree/sub/", 0);
    show_pathstat("tree/a.txt/", 0);
    show_pathstat(".", 0);
    show_pathstat("tree/sub/..", 0);
    show_pathstat("tree/./sub//inner.txt", 0);
    {
        __wasi_filestat_t st;
        show("path_filestat_get bad fd", __wasi_path_filestat_get(BAD_FD, 0, "tree", &st));
    }
    struct stat st;
    say("stat link -> %d reg=%d size=%lld\n", stat("/sandbox/tree/link", &st), S_ISREG(st.st_mode),
        (long long)st.st_size);
    say("lstat link -> %d lnk=%d\n", lstat("/sandbox/tree/link", &st), S_ISLNK(st.st_mode));
    say("stat dir -> %d dir=%d\n", stat("/sandbox/tree/sub", &st), S_ISDIR(st.st_mode));

    /* Create and remove directories. */
    say("-- mkdir/rmdir\n");
    show("path_create_directory new", __wasi_path_create_directory(SANDBOX, "new"));
    show("path_create_directory new again", __wasi_path_create_directory(SANDBOX, "new"));
    show("path_create_directory new/deep", __wasi_path_create_directory(SANDBOX, "new/deep"));
    show("path_create_directory missing/x", __wasi_path_create_directory(SANDBOX, "missing/x"));
    show("path_create_directory over file", __wasi_path_create_directory(SANDBOX, "tree/a.txt"));
    show("path_create_directory under file",
         __wasi_path_create_directory(SANDBOX, "tree/a.txt/x"));
    show("path_create_directory trailing slash", __wasi_path_create_directory(SANDBOX, "slash/"));
    show("path_create_directory empty", __wasi_path_create_directory(SANDBOX, ""));
    show("path_create_directory bad fd", __wasi_path_create_directory(BAD_FD, "x"));
    {
        __wasi_fd_t f;
        show("path_open creat on a directory", open_at(SANDBOX, "tree", 0, __WASI_OFLAGS_CREAT,
                                                        0, &f));
        show("path_open creat|directory on a new name",
             open_at(SANDBOX, "newdir_by_open", 0,
                     __WASI_OFLAGS_CREAT | __WASI_OFLAGS_DIRECTORY, 0, &f));
    }
    say("mkdir posix -> %d\n", mkdir("/sandbox/new/posix", 0755));
    errno = 0;
    say("mkdir posix exists -> %d errno=%d\n", mkdir("/sandbox/new/posix", 0755), errno);
    show("path_remove_directory non-empty", __wasi_path_remove_directory(SANDBOX, "new"));
    show("path_remove_directory new/deep", __wasi_path_remove_directory(SANDBOX, "new/deep"));
    show("path_remove_directory again", __wasi_path_remove_directory(SANDBOX, "new/deep"));
    show("path_remove_directory file", __wasi_path_remove_directory(SANDBOX, "tree/b.txt"));
    show("path_remove_directory symlink", __wasi_path_remove_directory(SANDBOX, "tree/link"));
    show("path_remove_directory trailing slash",
         __wasi_path_remove_directory(SANDBOX, "slash/"));
    /* Whatever "slash/" did, remove it without printing the result. */
    (void)__wasi_path_remove_directory(SANDBOX, "slash");
    show("path_remove_directory bad fd", __wasi_path_remove_directory(BAD_FD, "new"));
    say("rmdir posix -> %d\n", rmdir("/sandbox/new/posix"));
    errno = 0;
    say("rmdir posix missing -> %d errno=%d\n", rmdir("/sandbox/new/posix"), errno);
    show("path_remove_directory new", __wasi_path_remove_directory(SANDBOX, "new"));

    /* Many entries: page through them with small buffers. */
    say("-- readdir paging\n");
    show("path_create_directory many", __wasi_path_create_directory(SANDBOX, "many"));
    for (int i = 0; i < 40; i++) {
        char name[64];
        snprintf(name, sizeof name, "many/entry-%02d%s", i, i % 7 == 0 ? "-with-a-longer-name" : "");
        if (i % 5 == 0) (void)__wasi_path_create_directory(SANDBOX, name);
        else (void)make_file(name, "x");
    }
    __wasi_fd_t dir;
    __wasi_errno_t e = open_at(SANDBOX, "many", 0, __WASI_OFLAGS_DIRECTORY, 0, &dir);
    show("path_open many O_DIRECTORY", e);
    __wasi_fdstat_t fs;
    e = __wasi_fd_fdstat_get(dir, &fs);
    say("fd_fdstat_get dir: %u type=%u\n", (unsigned)e, (unsigned)fs.fs_filetype);
    __wasi_filestat_t fst;
    e = __wasi_fd_filestat_get(dir, &fst);
    say("fd_filestat_get dir: %u type=%u\n", (unsigned)e, (unsigned)fst.filetype);
    list_direct(dir, 4096, 1);
    {
        /* File operations on a directory descriptor. */
        uint8_t b[8];
        __wasi_iovec_t iov = {b, sizeof b};
        __wasi_ciovec_t ciov = {(const uint8_t *)"x", 1};
        __wasi_size_t n;
        __wasi_filesize_t off;
        say("dir fd: read=%u", (unsigned)__wasi_fd_read(dir, &iov, 1, &n));
        say(" pread=%u", (unsigned)__wasi_fd_pread(dir, &iov, 1, 0, &n));
        say(" write=%u", (unsigned)__wasi_fd_write(dir, &ciov, 1, &n));
        say(" pwrite=%u", (unsigned)__wasi_fd_pwrite(dir, &ciov, 1, 0, &n));
        say(" set_size=%u", (unsigned)__wasi_fd_filestat_set_size(dir, 0));
        say(" allocate=%u", (unsigned)__wasi_fd_allocate(dir, 0, 1));
        say(" sync=%u", (unsigned)__wasi_fd_sync(dir));
        say(" datasync=%u", (unsigned)__wasi_fd_datasync(dir));
        say(" advise=%u", (unsigned)__wasi_fd_advise(dir, 0, 0, __WASI_ADVICE_NORMAL));
        say(" seek=%u", (unsigned)__wasi_fd_seek(dir, 0, __WASI_WHENCE_SET, &off));
        say(" tell=%u\n", (unsigned)__wasi_fd_tell(dir, &off));
    }
    list_direct(dir, 200, 0);
    {
        uint8_t b[256];
        __wasi_size_t used = 77;
        show("fd_readdir cookie far past the end",
             __wasi_fd_readdir(dir, b, sizeof b, 1000000, &used));
        say("used=%u\n", (unsigned)used);
    }
    list_direct(dir, 64, 0);
    {
        uint8_t small[8];
        __wasi_size_t used = 0;
        e = __wasi_fd_readdir(dir, small, sizeof small, __WASI_DIRCOOKIE_START, &used);
        say("fd_readdir 8-byte buffer: %u used=%u\n", (unsigned)e, (unsigned)used);
        e = __wasi_fd_readdir(dir, small, 0, __WASI_DIRCOOKIE_START, &used);
        say("fd_readdir 0-byte buffer: %u used=%u\n", (unsigned)e, (unsigned)used);
    }
    (void)__wasi_fd_close(dir);
    list_posix("/sandbox/many");
    /* Rights a directory cannot use (all but FD_WRITE): wasmtime grants what applies. */
    e = __wasi_path_open(SANDBOX, 0, "many", __WASI_OFLAGS_DIRECTORY,
                         ALL_RIGHTS & ~(__wasi_rights_t)__WASI_RIGHTS_FD_WRITE, ALL_RIGHTS, 0, &dir);
    show("path_open dir asking for datasync/allocate/set_size rights", e);
    if (!e) (void)__wasi_fd_close(dir);

    e = open_at(SANDBOX, "tree/empty", 0, __WASI_OFLAGS_DIRECTORY, 0, &dir);
    list_direct(dir, 4096, 1);
    (void)__wasi_fd_close(dir);
    e = open_at(SANDBOX, "tree/a.txt", 0, 0, 0, &dir);
    {
        uint8_t b[256];
        __wasi_size_t used = 0;
        show("fd_readdir on a file",
             __wasi_fd_readdir(dir, b, sizeof b, __WASI_DIRCOOKIE_START, &used));
        show("fd_readdir bad fd",
             __wasi_fd_readdir(BAD_FD, b, sizeof b, __WASI_DIRCOOKIE_START, &used));
    }
    (void)__wasi_fd_close(dir);

    /* Paths relative to a directory fd other than the preopen. */
    e = open_at(SANDBOX, "tree", 0, __WASI_OFLAGS_DIRECTORY, 0, &dir);
    show("path_open tree", e);
    show("path_create_directory via subdir fd", __wasi_path_create_directory(dir, "made"));
    __wasi_fd_t f;
    e = open_at(dir, "sub/inner.txt", 0, 0, 0, &f);
    show("path_open relative to subdir fd", e);
    char buf[32] = {0};
    __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf - 1};
    __wasi_size_t n = 0;
    e = __wasi_fd_read(f, &iov, 1, &n);
    say("read: %u [%s]\n", (unsigned)e, buf);
    (void)__wasi_fd_close(f);
    e = open_at(dir, "../tree/b.txt", 0, 0, 0, &f);
    show("path_open ../tree/b.txt from subdir fd", e);
    (void)__wasi_fd_close(dir);
    list_posix("/sandbox");
    return 0;
}
