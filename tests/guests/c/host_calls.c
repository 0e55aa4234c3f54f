/* A C guest calling every C-declarable TestHost function through the
 * generated header (tests/guests/include/funk_test_host.h).
 *
 * Built as a wasm32-wasi reactor that imports only the "test" and "other"
 * namespaces (see scripts/build-guests).  Exports are of two kinds:
 *   call_*   pass Python's arguments through to one host function and return
 *            its result, so the test checks the value exactly;
 *   check_*  run a scenario and return 0, or the source line of the first
 *            failing check (the test reports it).
 * tests/test_c_guests.py drives them on every engine.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "funk_test_host.h"

#define EXPORT(name) __attribute__((export_name(#name)))
#define CHECK(cond) do { if (!(cond)) return __LINE__; } while (0)

/* The C view of funk's records must match funk's layout (the header asserts
 * the sizes; the offsets are checked here). */
_Static_assert(offsetof(Point, x) == 0 && offsetof(Point, y) == 4, "Point offsets");
_Static_assert(offsetof(Stat, kind) == 0, "Stat.kind");
_Static_assert(offsetof(Stat, size) == 8, "Stat.size");
_Static_assert(offsetof(Stat, mode) == 16, "Stat.mode");
_Static_assert(offsetof(Stat, origin) == 20, "Stat.origin");
_Static_assert(_Alignof(Stat) == 8, "Stat alignment");
_Static_assert(sizeof(funk_ciovec) == 8 && sizeof(funk_iovec) == 8, "iovec layout");
_Static_assert(sizeof(void *) == 4 && sizeof(size_t) == 4, "wasm32");

/* scalars ------------------------------------------------------------------ */

EXPORT(call_add) int32_t call_add(int32_t a, int32_t b) { return test_add(a, b); }

EXPORT(call_add64) int64_t call_add64(int64_t a, int64_t b) { return test_add64(a, b); }

EXPORT(call_mul_f) double call_mul_f(float a, double b) { return test_mul_f(a, b); }

EXPORT(call_renamed) int32_t call_renamed(int32_t x) { return other_renamed_function(x); }

EXPORT(check_scalars) int32_t check_scalars(void) {
    CHECK(test_add(2, 3) == 5);
    CHECK(test_add(INT32_MAX, 1) == INT32_MIN);
    CHECK(test_add64(INT64_MAX, 1) == INT64_MIN);
    CHECK(test_add64(-5, 3) == -2);
    CHECK(test_mul_f(1.5f, 4.0) == 6.0);
    CHECK(test_mul_f(0.1f, 1.0) == (double)0.1f);   /* f32 arrives unrounded */
    CHECK(test_half_f32(3.0f) == 1.5f);
    CHECK(test_echo_u32(UINT32_MAX) == UINT32_MAX);
    CHECK(test_echo_i32(INT32_MIN) == INT32_MIN);
    CHECK(test_echo_u64(UINT64_MAX) == UINT64_MAX);
    CHECK(test_echo_i64(INT64_MIN) == INT64_MIN);
    CHECK(test_small(-5, 200, -300, 60000) == -5 + 200 - 300 + 60000);
    CHECK(other_renamed_function(-4) == -12);
    return 0;
}

/* memory ranges ---------------------------------------------------------------- */

static const char WORDS[] = "a banana for a cat";

EXPORT(call_count_a) int32_t call_count_a(void) { return test_count_a(WORDS, strlen(WORDS)); }

static const uint8_t PAYLOAD[] = "hello, funk";

EXPORT(call_checksum) uint32_t call_checksum(void) {
    return test_checksum(PAYLOAD, sizeof PAYLOAD - 1);
}

EXPORT(check_fill) int32_t check_fill(void) {
    uint8_t buf[24];
    memset(buf, 0x11, sizeof buf);
    test_fill(buf + 4, 16, 0xA5);               /* only [4, 20) may change */
    for (int i = 0; i < 24; i++)
        CHECK(buf[i] == ((i >= 4 && i < 20) ? 0xA5 : 0x11));
    test_fill(buf, 0, 0x00);                    /* an empty range is fine */
    CHECK(buf[0] == 0x11);
    return 0;
}

EXPORT(check_upper) int32_t check_upper(void) {
    static const char text[] = "hello wasm";
    uint8_t out[8];
    memset(out, '#', sizeof out);
    CHECK(test_upper(text, strlen(text), out, 5) == 5);   /* truncated to out_len */
    CHECK(memcmp(out, "HELLO###", 8) == 0);
    CHECK(test_upper("ok", 2, out, sizeof out) == 2);
    CHECK(memcmp(out, "OKLLO###", 8) == 0);
    return 0;
}

EXPORT(call_gather) uint32_t call_gather(void) {
    static const uint8_t one[] = "gat";
    static const uint8_t two[] = "her";
    static const uint8_t three[] = "ed!";
    funk_ciovec parts[4] = {
        {one, 3}, {two, 0}, {two, 3}, {three, 3},   /* an empty slice in the middle */
    };
    return test_gather(parts, 4);
}

EXPORT(check_scatter) int32_t check_scatter(void) {
    uint8_t a[3], b[4], guard[2] = {0xEE, 0xEE};
    funk_iovec parts[2] = {{a, sizeof a}, {b, sizeof b}};
    CHECK(test_scatter(parts, 2, 253) == 7);
    /* seed + running index, wrapping at 256 */
    CHECK(a[0] == 253 && a[1] == 254 && a[2] == 255);
    CHECK(b[0] == 0 && b[1] == 1 && b[2] == 2 && b[3] == 3);
    CHECK(guard[0] == 0xEE && guard[1] == 0xEE);
    CHECK(test_scatter(parts, 0, 1) == 0);
    return 0;
}

/* pointers and records ---------------------------------------------------------- */

EXPORT(check_ptr_u64) int32_t check_ptr_u64(void) {
    uint64_t cells[3] = {1, 2, 3};
    test_store_u64(&cells[1], UINT64_C(0x0123456789ABCDEF));
    CHECK(cells[0] == 1 && cells[2] == 3);
    CHECK(cells[1] == UINT64_C(0x0123456789ABCDEF));
    cells[2] = UINT64_MAX;
    CHECK(test_load_u64(&cells[2]) == UINT64_MAX);
    return 0;
}

EXPORT(check_swap_point) int32_t check_swap_point(void) {
    Point pts[2] = {{-7, 9}, {100, 200}};
    test_swap_point(&pts[0]);
    CHECK(pts[0].x == 9 && pts[0].y == -7);
    CHECK(pts[1].x == 100 && pts[1].y == 200);
    return 0;
}

/* Python checks what the host read: Stat(kind=3, size=2**40+5, mode=0o755, origin=(-2, 9)). */
EXPORT(call_stat_at) uint64_t call_stat_at(void) {
    Stat st;
    memset(&st, 0xCC, sizeof st);               /* garbage in the padding */
    st.kind = 3;
    st.size = (UINT64_C(1) << 40) + 5;
    st.mode = 0755;
    st.origin.x = -2;
    st.origin.y = 9;
    return test_stat_at(&st);
}

/* results -------------------------------------------------------------------------- */

EXPORT(call_status) int32_t call_status(int32_t code) { return test_status(code); }

EXPORT(check_status) int32_t check_status(void) {
    CHECK(test_status(0) == Status_ok);
    CHECK(test_status(1) == Status_bad_input);
    CHECK(test_status(2) == Status_not_found);
    return 0;
}

EXPORT(check_divmod) int32_t check_divmod(void) {
    uint32_t q = 0xDEAD, r = 0xBEEF;
    CHECK(test_divmod(17, 5, &q, &r) == Status_ok);
    CHECK(q == 3 && r == 2);
    CHECK(test_divmod(UINT32_MAX, 16, &q, &r) == Status_ok);
    CHECK(q == UINT32_MAX / 16 && r == 15);
    /* status only: the out-pointers are left alone */
    q = 0xDEAD;
    r = 0xBEEF;
    CHECK(test_divmod(1, 0, &q, &r) == Status_bad_input);
    CHECK(q == 0xDEAD && r == 0xBEEF);
    return 0;
}

EXPORT(check_make_stat) int32_t check_make_stat(void) {
    Stat st[2];
    memset(st, 0, sizeof st);
    CHECK(test_make_stat(UINT64_C(0xFEDCBA9876543210), &st[0]) == Status_ok);
    CHECK(st[0].kind == 7);
    CHECK(st[0].size == UINT64_C(0xFEDCBA9876543210));
    CHECK(st[0].mode == 0644);
    CHECK(st[0].origin.x == -1 && st[0].origin.y == 2);
    CHECK(st[1].kind == 0 && st[1].size == 0);  /* nothing written past 32 bytes */
    return 0;
}

EXPORT(check_wide) int32_t check_wide(void) {
    struct { uint64_t b; uint8_t c; uint8_t after; } outs = {0, 0, 0x5A};
    CHECK(test_wide(3, &outs.b, &outs.c) == INT64_C(3) << 33);
    CHECK(outs.b == UINT64_MAX);
    CHECK(outs.c == 0xAB);
    CHECK(outs.after == 0x5A);                  /* a u8 out writes one byte */
    return 0;
}

EXPORT(check_memory_size) int32_t check_memory_size(void) {
    CHECK(test_memory_size() == __builtin_wasm_memory_size(0) * 65536);
    return 0;
}

/* custom types and handles ------------------------------------------------------------ */

EXPORT(call_mix) uint32_t call_mix(uint32_t a, uint32_t b) { return test_mix(a, b); }

EXPORT(check_handles) int32_t check_handles(void) {
    static const uint8_t data[] = "blob data";
    uint8_t out[32];
    uint64_t h = test_open_blob(data, 9);
    uint64_t h2 = 0;
    CHECK(test_blob_len(h) == 9);
    memset(out, 0, sizeof out);
    CHECK(test_blob_read(h, out, 4) == 4);
    CHECK(memcmp(out, "blob\0", 5) == 0);
    CHECK(test_blob_read(h, out, sizeof out) == 9);
    CHECK(memcmp(out, "blob data", 9) == 0 && out[9] == 0);
    CHECK(test_open_two((const uint8_t *)"xy", 2, &h2) == Status_ok);
    CHECK(h2 != h);
    CHECK(test_blob_len(h2) == 2);
    CHECK(test_close_blob(h) == Status_ok);
    CHECK(test_blob_len(h2) == 2);              /* the other one is still open */
    CHECK(test_close_blob(h2) == Status_ok);
    return 0;
}

/* Opens a blob and leaves it open: Python inspects the instance's resources. */
EXPORT(call_open_blob) uint64_t call_open_blob(void) {
    return test_open_blob((const uint8_t *)"kept", 4);
}

EXPORT(call_blob_len) uint32_t call_blob_len(uint64_t h) { return test_blob_len(h); }
