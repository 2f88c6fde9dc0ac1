/*
 * fuzz_zerg_wire.c - libFuzzer target for the zerg messages (zerg_wire.c,
 * included: it is pure and links nothing else).
 *
 * Input: bytes as received after uWSGI's head (mulefarm's description),
 * also tried as a head. A parse that succeeds must account for every
 * record's fds, keep names inside the input, and give the same records
 * when written back with zerg_wire_put()/zerg_wire_end() and parsed
 * again; the re-written message must be byte for byte the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/zerg_wire.c"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define MAX_RECS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool announced;
	int h = zerg_wire_parse_head(data, size, &announced);
	CHECK(h >= -1);
	CHECK(h == -1 || (size >= ZERG_TAG_LEN && memcmp(data, ZERG_TAG, ZERG_TAG_LEN) == 0));

	const char *in = (const char *)data;
	struct zerg_rec r[MAX_RECS];
	size_t n;
	int fds = zerg_wire_parse(in, size, r, MAX_RECS, &n);
	if (fds < 0)
		return 0;
	CHECK(zerg_wire_complete(in, size));
	CHECK(fds <= ZERG_MAX_FDS && n <= MAX_RECS);
	int sum = 0;
	static char out[ZERG_EXTRA_MAX * 2];
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		sum += r[i].nfds;
		char name[ZERG_NAME_MAX + 1] = "";
		if (r[i].kind == ZERG_REC_LISTENER) {
			CHECK(r[i].name >= in && r[i].name + r[i].name_len <= in + size);
			CHECK(r[i].name_len >= 1 && r[i].name_len <= ZERG_NAME_MAX);
			memcpy(name, r[i].name, r[i].name_len);
			name[r[i].name_len] = '\0';
			if (strlen(name) != r[i].name_len)
				return 0; /* a NUL in the name: not what put() writes */
		}
		CHECK(zerg_wire_put(out, sizeof(out), &len, r[i].kind, r[i].nfds, r[i].pid, name) ==
		      0);
	}
	CHECK(sum == fds);
	CHECK(zerg_wire_end(out, sizeof(out), &len) == 0);
	/* leading zeros in numbers ("L01") parse but are written without */
	if (len == size)
		CHECK(memcmp(out, in, size) == 0);
	struct zerg_rec again[MAX_RECS];
	size_t n2;
	CHECK(zerg_wire_parse(out, len, again, MAX_RECS, &n2) == fds && n2 == n);
	for (size_t i = 0; i < n; i++) {
		CHECK(again[i].kind == r[i].kind && again[i].nfds == r[i].nfds &&
		      again[i].pid == r[i].pid && again[i].name_len == r[i].name_len);
		CHECK(r[i].name_len == 0 || memcmp(again[i].name, r[i].name, r[i].name_len) == 0);
	}
	return 0;
}
