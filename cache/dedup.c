/* Placeholder: being written (see dedup.h). */
#include "cache/dedup.h"
