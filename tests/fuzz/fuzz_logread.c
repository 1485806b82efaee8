/* libFuzzer target: one CMTrace log line (common/logread.h). Logs are read back by `cas-agent log`
 * and may hold anything (a truncated write, another program's bytes). A record must keep what
 * the header promises: bounded fields, NUL-terminated, no control bytes in what is printed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/logread.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static int printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cas_log_record rec; /* 33 KB: not on the stack */

    if (cas_logread_parse((const char *)data, size, &rec) != CAS_OK)
        return 0;
    check(rec.ms >= 0 && rec.ms <= 999 && rec.type >= 0 && rec.type <= 3);
    check(rec.len <= CAS_LOGREAD_LINE_MAX && rec.text[rec.len] == '\0');
    check(strlen(rec.text) == rec.len && printable(rec.text, rec.len));
    check(memchr(rec.component, '\0', sizeof(rec.component)) != NULL && rec.component[0]);
    check(printable(rec.component, strlen(rec.component)));
    check(memchr(rec.file, '\0', sizeof(rec.file)) != NULL);
    check(printable(rec.file, strlen(rec.file)));
    return 0;
}
