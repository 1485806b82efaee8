/* cas-site: the site's side of cas-agent. Generates the site key pair, builds packages onto a
 * distribution point folder, and creates, edits and signs policy documents (never one an agent
 * would refuse). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "site/site.h"

static const char cas_site_help_text[] =
    "usage: cas-site COMMAND ...\n"
    "\n"
    "  key generate --site CEN --out DIR [--type ed25519|rsa|ecdsa]\n"
    "      Create the site key pair: DIR/CEN.key (private, PKCS#8 PEM, mode 0600) and\n"
    "      DIR/CEN.pem (public, to install in each agent's trusted-keys folder). An existing\n"
    "      key is never overwritten. Prints the key id and both paths.\n"
    "\n"
    "  key rotate --site CEN --key OLD.key --out DIR [--type ed25519|rsa|ecdsa] [--serial N]\n"
    "      Create the next key pair DIR/CEN.key and DIR/CEN.pem, and the key change\n"
    "      DIR/CEN.keychange with its signature DIR/CEN.keychange.sig, made with OLD.key. Publish\n"
    "      both next to the policy; agents that trust OLD.key's public key move to the new key.\n"
    "      Serial: --serial, else one more than the CEN.keychange next to OLD.key, else 1.\n"
    "      Nothing is overwritten. Prints both key ids, the serial and the paths.\n"
    "\n"
    "  package build --source DIR --package ID --version N --dp DIR [--alg sha256|sha1]\n"
    "                [--force] [--print-size]\n"
    "      Copy the files of DIR to DP/ID.N/ and write DP/ID.N.sums, the sums listing. Prints\n"
    "      the package hash (and with --print-size, the total bytes on a second line). A version\n"
    "      already on the DP is refused unless --force replaces it.\n"
    "\n"
    "  policy create (--site CEN | --last PREV) --out NEW [--empty] [--force] [EDIT]\n"
    "      Write a new policy: serial 1 (or --serial N), issued now, no advertisements. With\n"
    "      --last: PREV's successor, serial PREV + 1, its advertisements and other fields kept\n"
    "      (--empty drops the advertisements), valid for as long as PREV was. An existing NEW\n"
    "      is replaced only when it is PREV or with --force.\n"
    "\n"
    "  policy add-advert POLICY --id ADV --content C --dp DIR --location URL [--location URL]\n"
    "                    --command CMD [--arg A]... [--context System|user:NAME] [--mandatory]\n"
    "                    [--start TIME] [--rerun never|if_failed|always] [--max-run-minutes M]\n"
    "                    [--success-code N]... [--persist] [--alg sha256|sha1] [--no-verify]\n"
    "                    [EDIT]\n"
    "      Advertise content C (e.g. CEN00002.2) as built on the DP folder DIR: the package\n"
    "      hash of DIR/C.sums and the total size of the files, each checked on DIR (hashed,\n"
    "      unless --no-verify). A relative CMD must be a file of the package.\n"
    "\n"
    "  policy remove-advert POLICY --id ADV [--id ADV]... [EDIT]\n"
    "      Withdraw advertisements.\n"
    "\n"
    "      EDIT: [--serial N] [--expires TIME | --expires-days D | --no-expires] [--key KEY]\n"
    "      Every change sets issued to now and the serial to N or one higher; expires is kept\n"
    "      unless given. The result is checked as an agent checks it (valid, not expired, serial\n"
    "      higher) and refused otherwise, leaving the file unchanged; --key also signs it.\n"
    "      Prints the policy's path, site, serial, issued, expires and advertisement count.\n"
    "\n"
    "  policy sign --key KEY [--no-check] POLICY\n"
    "      Check POLICY as an agent does (unless --no-check) and write its detached signature\n"
    "      to POLICY.sig. Prints the key id.\n"
    "\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 success, 1 failure (stderr names the error code), 2 usage error.\n";

int cas_site_report(cas_hr hr)
{
    const char *detail = cas_err_detail();
    if (!detail || !*detail)
        detail = cas_err_message(hr);
    fprintf(stderr, "cas-site: error 0x%08X: %s\n", (unsigned)hr, detail);
    return CAS_SITE_EXIT_FAIL;
}

/* The function itself, not the analyzer's view of it that site.h defines. */
#undef cas_site_usage
int cas_site_usage(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("cas-site: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; usage: cas-site %s\n", usage);
    return CAS_SITE_EXIT_USAGE;
}

int cas_site_getopt(int argc, char **argv, const struct option *opts, const char *usage)
{
    int idx = 0;
    /* A leading ':' makes a missing argument ':' instead of '?', and keeps getopt quiet so that
     * every usage error has the same one-line form. */
    int c = getopt_long(argc, argv, ":", opts, &idx);
    if (c == ':') {
        cas_site_usage(usage, "option '%s' needs a value", argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        cas_site_usage(usage, "unknown option '%s'", argv[optind - 1]);
        return '?';
    }
    return c;
}

cas_hr cas_site_ssl_fail(cas_hr code, const char *what)
{
    char reason[256] = "no reason given by OpenSSL";
    /* The oldest error is the root cause; the later ones only say which layer passed it on. */
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    return cas_fail(code, "%s: %s", what, reason);
}

static int cas_site_dispatch(int argc, char **argv)
{
    if (argc < 2)
        return cas_site_usage("key|package|policy ...", "missing command (try --help)");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(cas_site_help_text, stdout);
        return CAS_SITE_EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("cas-site %s\n", CAS_VERSION);
        return CAS_SITE_EXIT_OK;
    }
    /* The subcommand becomes argv[0] of the command, as getopt expects a program name there. */
    if (!strcmp(cmd, "key"))
        return cas_site_cmd_key(argc - 2, argv + 2);
    if (!strcmp(cmd, "package"))
        return cas_site_cmd_package(argc - 2, argv + 2);
    if (!strcmp(cmd, "policy"))
        return cas_site_cmd_policy(argc - 2, argv + 2);
    return cas_site_usage("key|package|policy ...", "unknown command '%s' (try --help)", cmd);
}

int main(int argc, char **argv)
{
    int rc = cas_site_dispatch(argc, argv);
    /* Scripts take the package hash from stdout: a hash lost to a full disk or closed pipe must
     * not look like success. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int err = errno;
        if (rc == CAS_SITE_EXIT_OK)
            rc = cas_site_report(
                cas_fail(cas_err_from_errno(err), "writing to standard output: %s", strerror(err)));
    }
    return rc;
}
