/* cas-agent cache list */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"

static int cache_usage(void)
{
    fputs("usage: cas-agent cache list [--json]\n", stderr);
    return 2;
}

int cas_cmd_cache(struct cas_agent *a, int argc, char **argv)
{
    int json = 0;
    if (argc < 2 || strcmp(argv[1], "list") != 0)
        return cache_usage();
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else
            return cache_usage();
    }
    struct cache *c = NULL;
    struct cache_entry_info *items = NULL;
    size_t n = 0;
    cas_hr hr = cas_agent_cache(a, &c);
    if (hr == CAS_OK)
        hr = cache_list(c, &items, &n);
    if (hr != CAS_OK)
        return cas_agent_fail(hr);
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "content", items[i].content_id);
            cJSON_AddNumberToObject(o, "files", (double)items[i].files);
            cJSON_AddNumberToObject(o, "size", (double)items[i].size);
            cJSON_AddItemToArray(arr, o);
        }
        char *text = cJSON_PrintUnformatted(arr);
        if (text)
            puts(text);
        free(text);
        cJSON_Delete(arr);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s\t%zu files\t%llu bytes\n", items[i].content_id, items[i].files,
                   (unsigned long long)items[i].size);
    }
    free(items);
    return 0;
}
