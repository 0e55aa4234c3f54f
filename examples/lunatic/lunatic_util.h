/* Small helpers shared by the Lunatic examples in this directory.
 *
 * The raw ABI is in ../include/lunatic.h (generated from the host classes by
 * `python -m codegen --write`); this header wraps the parts every example
 * needs:
 *
 *   say(fmt, ...)             print one line with a single write(2) on fd 1, so
 *                             lines of different processes never mix and nothing
 *                             waits in a stdio buffer when a process ends;
 *   lu_error_text / lu_report_error
 *                             the text of an error resource (then dropped);
 *   lu_send / lu_send_str     build a data message (tag, bytes) and send it;
 *   lu_receive                take the next message (optionally by tag) and copy
 *                             its bytes out as a NUL-terminated string;
 *   lu_read / lu_read_str     read the bytes of the message in the scratch slot;
 *   lu_i32 / lu_i64 / lu_spawn
 *                             encode spawn parameters (17-byte records, spec 5.10)
 *                             and spawn an exported function of this module
 *                             with inherit_spawn.
 *
 * Process, stream and error ids are u64 handles local to the calling process.
 * A function a program wants to spawn is exported with
 * LU_EXPORT("name") and takes only int32_t / int64_t parameters.
 */
#ifndef LUNATIC_UTIL_H
#define LUNATIC_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lunatic.h"

/* Export a function under NAME so that lu_spawn can start it in a new process. */
#define LU_EXPORT(name) __attribute__((export_name(name), used))

/* receive / send_receive_skip_search results (spec Appendix B). */
#define LU_DATA 0u
#define LU_SIGNAL 1u
#define LU_TIMEOUT 9027u

/* A guest address as the i32 the raw out-pointer parameters take. */
#define LU_PTR(p) ((uint32_t)(uintptr_t)(p))

/* Print one formatted line (or any text) on stdout with one write. */
__attribute__((format(printf, 1, 2)))
static inline void say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = write(1, buf + done, (size_t)n - done);
        if (w <= 0) return;
        done += (size_t)w;
    }
}

/* Copy the text of error ERR into BUF (truncated, NUL-terminated) and drop the error. */
static inline const char *lu_error_text(uint64_t err, char *buf, size_t cap) {
    uint32_t size = lunatic_error_string_size(err);
    char *text = malloc(size + 1u);
    if (text == NULL) {
        snprintf(buf, cap, "(error %llu: out of memory)", (unsigned long long)err);
    } else {
        lunatic_error_to_string(err, LU_PTR(text));
        text[size] = 0;
        snprintf(buf, cap, "%s", text);
        free(text);
    }
    lunatic_error_drop(err);
    return buf;
}

/* Print "WHAT failed: TEXT" for error ERR (and drop it). */
static inline void lu_report_error(const char *what, uint64_t err) {
    char text[256];
    say("%s failed: %s\n", what, lu_error_text(err, text, sizeof text));
}

/* Build a data message with TAG (0: none) and LEN bytes; it stays in the scratch
 * slot, so resources can still be pushed before lunatic_message_send. */
static inline void lu_create(int64_t tag, const void *data, size_t len) {
    lunatic_message_create_data(tag, len);
    if (len) lunatic_message_write_data((const uint8_t *)data, len);
}

/* Send LEN bytes with TAG to process TO. */
static inline void lu_send(uint64_t to, int64_t tag, const void *data, size_t len) {
    lu_create(tag, data, len);
    lunatic_message_send(to);
}

/* Send a string (without its NUL) with TAG to process TO. */
static inline void lu_send_str(uint64_t to, int64_t tag, const char *text) {
    lu_send(to, tag, text, strlen(text));
}

/* Read the rest of the data message in the scratch slot into BUF (up to CAP
 * bytes); returns the number of bytes copied. */
static inline size_t lu_read(void *buf, size_t cap) {
    size_t total = 0;
    while (total < cap) {
        uint32_t n = lunatic_message_read_data((uint8_t *)buf + total, cap - total);
        if (n == 0) break;
        total += n;
    }
    return total;
}

/* The same as a NUL-terminated string (CAP includes the NUL). */
static inline const char *lu_read_str(char *buf, size_t cap) {
    size_t n = lu_read(buf, cap - 1);
    buf[n] = 0;
    return buf;
}

/* Take the next message with TAG (0: any) into the scratch slot, waiting at most
 * TIMEOUT_MS (0: forever).  For a data message its bytes are copied into BUF as a
 * string (if BUF is not NULL).  Returns LU_DATA, LU_SIGNAL or LU_TIMEOUT. */
static inline uint32_t lu_receive(int64_t tag, uint32_t timeout_ms, char *buf, size_t cap) {
    uint32_t rc = lunatic_message_receive(tag, timeout_ms);
    if (buf != NULL && cap > 0) {
        buf[0] = 0;
        if (rc == LU_DATA) lu_read_str(buf, cap);
    }
    return rc;
}

/* One spawn parameter: a type code and a little-endian u128 (spec 5.10). */
typedef struct lu_param { uint8_t bytes[17]; } lu_param;
_Static_assert(sizeof(lu_param) == 17, "spawn parameter records are 17 bytes");

static inline lu_param lu_param_of(uint8_t code, uint64_t low, int negative) {
    lu_param p;
    p.bytes[0] = code;
    for (int i = 0; i < 8; i++) p.bytes[1 + i] = (uint8_t)(low >> (8 * i));
    /* sign-extended to 128 bits as the Rust guest does (the host ignores the rest) */
    memset(p.bytes + 9, negative ? 0xFF : 0x00, 8);
    return p;
}

/* An i32 parameter (type code 0x7F). */
static inline lu_param lu_i32(int32_t v) {
    return lu_param_of(0x7F, (uint64_t)(int64_t)v, v < 0);
}

/* An i64 parameter (type code 0x7E). */
static inline lu_param lu_i64(int64_t v) {
    return lu_param_of(0x7E, (uint64_t)v, v < 0);
}

/* Start the exported function FUNCTION of this module in a new process with the
 * N parameters PARAMS (inherit_spawn: same module, same environment).  LINK != 0
 * links the child to the caller; when the child fails the caller gets a
 * LinkDied with tag LINK.  Returns 0 with the child's handle in *OUT, or 1 after
 * printing the error's text. */
static inline uint32_t lu_spawn(int64_t link, const char *function, const lu_param *params,
                                size_t n, uint64_t *out) {
    uint64_t result = 0;
    uint32_t rc = lunatic_process_inherit_spawn(link, function, strlen(function),
                                                (const uint8_t *)params,
                                                n * sizeof(lu_param), &result);
    if (rc != 0) {
        char what[128];
        snprintf(what, sizeof what, "spawning %s", function);
        lu_report_error(what, result);
        return rc;
    }
    *out = result;
    return 0;
}

#endif /* LUNATIC_UTIL_H */
