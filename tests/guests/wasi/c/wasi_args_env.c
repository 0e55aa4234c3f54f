/* argv and environment: args_sizes_get, args_get, environ_sizes_get,
 * environ_get, both through wasi-libc (main's argv, getenv) and directly.
 * Also writes to stderr (fd_write on fd 2). */
#include "guest.h"

#include <stdlib.h>

static void show_vector(const char *what, __wasi_size_t count, __wasi_size_t size,
                        char **ptrs, const char *buf) {
    say("%s count=%u bufsize=%u\n", what, (unsigned)count, (unsigned)size);
    size_t used = 0;
    for (__wasi_size_t i = 0; i < count; i++) {
        /* Each string lies inside the buffer, packed one after the other. */
        int inside = ptrs[i] >= buf && ptrs[i] < buf + size;
        int packed = ptrs[i] == buf + used;
        size_t len = inside ? strnlen(ptrs[i], size - (size_t)(ptrs[i] - buf)) : 0;
        say("%s[%u] len=%zu inside=%d packed=%d [%s]\n", what, (unsigned)i, len, inside, packed,
            inside ? ptrs[i] : "?");
        used += len + 1;
    }
    say("%s total=%zu matches=%d\n", what, used, used == size);
}

int main(int argc, char **argv) {
    say("main argc=%d\n", argc);
    for (int i = 0; i < argc; i++) say("main argv[%d]=[%s]\n", i, argv[i]);
    say("argv[argc] is NULL: %d\n", argv[argc] == NULL);

    __wasi_size_t count = 0, size = 0;
    show("args_sizes_get", __wasi_args_sizes_get(&count, &size));
    char **ptrs = calloc(count + 1, sizeof *ptrs);
    char *buf = malloc(size + 16);
    memset(buf, 'Z', size + 16);
    show("args_get", __wasi_args_get((uint8_t **)ptrs, (uint8_t *)buf));
    show_vector("arg", count, size, ptrs, buf);
    say("byte after args untouched: %d\n", buf[size] == 'Z');
    free(ptrs);
    free(buf);

    show("environ_sizes_get", __wasi_environ_sizes_get(&count, &size));
    ptrs = calloc(count + 1, sizeof *ptrs);
    buf = malloc(size + 16);
    memset(buf, 'Z', size + 16);
    show("environ_get", __wasi_environ_get((uint8_t **)ptrs, (uint8_t *)buf));
    show_vector("env", count, size, ptrs, buf);
    say("byte after environ untouched: %d\n", buf[size] == 'Z');
    free(ptrs);
    free(buf);

    const char *names[] = {"HOME", "EMPTY", "EQUALS", "UNICODE", "MISSING", "PATH"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        say("getenv(%s) = %s%s%s\n", names[i], v ? "[" : "", v ? v : "(null)", v ? "]" : "");
    }

    out_fd(2, "stderr: %d args\n", argc);
    out_fd(2, "stderr: last arg [%s]\n", argv[argc - 1]);
    return 0;
}
