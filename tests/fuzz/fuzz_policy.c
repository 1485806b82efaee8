/* libFuzzer target: the policy parser and validator (common/policy.h). A policy arrives from the
 * management point before its signature is checked by some callers, so the parser must survive
 * any bytes. On success the lookups run too, and what the validator promised is checked: a broken
 * promise aborts, which the fuzzer reports like a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cas_policy p;
    memset(&p, 0, sizeof(p));
    if (cas_policy_parse((const char *)data, size, &p) != CAS_OK)
        return 0;
    check(p.schema == 1 && p.serial >= 1 && strlen(p.site) == 3);
    check(!cas_policy_is_expired(&p, p.issued)); /* expires is after issued, or unset */
    check(p.expires == 0 || cas_policy_is_expired(&p, p.expires));
    check(cas_policy_find_advert(&p, "") == NULL);
    for (size_t i = 0; i < p.n_adverts; i++) {
        const struct cas_advert *a = &p.adverts[i];
        check(a->id && a->version >= 1 && a->n_locations >= 1 && a->program.command);
        check(strlen(a->hash) == 64 || strlen(a->hash) == 40);
        check(cas_policy_find_advert(&p, a->id) == a); /* ids are unique */
        const struct cas_advert *c = cas_policy_find_content(&p, a->content_id);
        check(c && c <= a && strcmp(c->hash, a->hash) == 0 && c->size == a->size);
        check(a->program.args && a->program.args[a->program.argc] == NULL);
        check(cas_rerun_name(a->rerun) != NULL);
    }
    cas_policy_free(&p);
    return 0;
}
