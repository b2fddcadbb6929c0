/*
 * MySQL suite, tcase "url": the URL parser (no server needed).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* ------------------------------------------------------------------------ */
/* URL parser                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(url_full)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://dlock:p%40ss%3Aw%2Frd%25@127.0.0.1:3307/dlock_test", &u),
                     DLOCK_OK);
    ck_assert_str_eq(u.user, "dlock");
    ck_assert_str_eq(u.password, "p@ss:w/rd%");
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_uint_eq(u.port, 3307);
    ck_assert_str_eq(u.database, "dlock_test");
    ck_assert_ptr_null(u.socket);
    ck_assert_int_eq(u.ssl_mode, DLOCK_MYSQL_SSL_DEFAULT);
    ck_assert_uint_eq(u.connect_timeout_s, 0);
    dlock__mysql_url_free(&u);
    ck_assert_ptr_null(u.user);
    ck_assert_ptr_null(u.password);
}
END_TEST

START_TEST(url_minimal_and_schemes)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://db.example.com", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "db.example.com");
    ck_assert_ptr_null(u.user);
    ck_assert_ptr_null(u.password);
    ck_assert_ptr_null(u.database);
    ck_assert_uint_eq(u.port, 0);
    dlock__mysql_url_free(&u);

    ck_assert_int_eq(dlock__mysql_parse_url("mariadb://h/", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "h");
    ck_assert_ptr_null(u.database);
    dlock__mysql_url_free(&u);

    ck_assert_int_eq(dlock__mysql_parse_url("MySQL://h:1/d", &u), DLOCK_OK);
    ck_assert_uint_eq(u.port, 1);
    ck_assert_str_eq(u.database, "d");
    dlock__mysql_url_free(&u);

    /* A user without a password, and an empty password. */
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://app@h/d", &u), DLOCK_OK);
    ck_assert_str_eq(u.user, "app");
    ck_assert_ptr_null(u.password);
    dlock__mysql_url_free(&u);
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://app:@h/d", &u), DLOCK_OK);
    ck_assert_str_eq(u.password, "");
    dlock__mysql_url_free(&u);

    /* A forgotten %40 in the password: the last '@' ends the user part. */
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://app:a@b@h:65535/d", &u), DLOCK_OK);
    ck_assert_str_eq(u.password, "a@b");
    ck_assert_str_eq(u.host, "h");
    ck_assert_uint_eq(u.port, 65535);
    dlock__mysql_url_free(&u);
}
END_TEST

START_TEST(url_ipv6)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://u:p@[::1]:3306/db", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_uint_eq(u.port, 3306);
    ck_assert_str_eq(u.database, "db");
    dlock__mysql_url_free(&u);
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://[fe80::1%25eth0]/db", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "fe80::1%eth0");
    ck_assert_uint_eq(u.port, 0);
    dlock__mysql_url_free(&u);
}
END_TEST

START_TEST(url_socket)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://root@localhost/?socket=/tmp/x/mysqld.sock", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_str_eq(u.socket, "/tmp/x/mysqld.sock");
    ck_assert_ptr_null(u.database);
    dlock__mysql_url_free(&u);
    /* No host at all, an encoded path, a database. */
    ck_assert_int_eq(dlock__mysql_parse_url("mariadb://u:pw@/jobs?socket=%2Frun%2Fmysqld%2Fmysqld.sock", &u), DLOCK_OK);
    ck_assert_ptr_null(u.host);
    ck_assert_str_eq(u.socket, "/run/mysqld/mysqld.sock");
    ck_assert_str_eq(u.database, "jobs");
    dlock__mysql_url_free(&u);
    ck_assert_int_eq(dlock__mysql_parse_url("mysql:///?socket=/s", &u), DLOCK_OK);
    ck_assert_str_eq(u.socket, "/s");
    dlock__mysql_url_free(&u);
}
END_TEST

START_TEST(url_options)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://h/d?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ssl/ca.pem"
                                            "&ssl-capath=/etc/ssl/cas&ssl-cert=/c.pem&ssl-key=/k%20ey.pem"
                                            "&connect-timeout=5",
                                            &u),
                     DLOCK_OK);
    ck_assert_int_eq(u.ssl_mode, DLOCK_MYSQL_SSL_VERIFY_IDENTITY);
    ck_assert_str_eq(u.ssl_ca, "/etc/ssl/ca.pem");
    ck_assert_str_eq(u.ssl_capath, "/etc/ssl/cas");
    ck_assert_str_eq(u.ssl_cert, "/c.pem");
    ck_assert_str_eq(u.ssl_key, "/k ey.pem");
    ck_assert_uint_eq(u.connect_timeout_s, 5);
    dlock__mysql_url_free(&u);

    static const struct {
        const char *url;
        enum dlock_mysql_ssl_mode mode;
    } modes[] = {
        {"mysql://h?ssl-mode=disabled", DLOCK_MYSQL_SSL_DISABLED},
        {"mysql://h?ssl_mode=PREFERRED", DLOCK_MYSQL_SSL_PREFERRED},
        {"mysql://h?sslmode=Required", DLOCK_MYSQL_SSL_REQUIRED},
        {"mysql://h?SSL-MODE=verify-ca", DLOCK_MYSQL_SSL_VERIFY_CA},
        {"mysql://h/?connect_timeout=3600&ssl-mode=verify_identity", DLOCK_MYSQL_SSL_VERIFY_IDENTITY},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        ck_assert_msg(dlock__mysql_parse_url(modes[i].url, &u) == DLOCK_OK, "%s: %s", modes[i].url, dlock_last_error());
        ck_assert_int_eq(u.ssl_mode, modes[i].mode);
        dlock__mysql_url_free(&u);
    }
}
END_TEST

START_TEST(url_malformed)
{
    static const char *const bad[] = {
        "",
        "mysql",
        "mysql:",
        "mysql:/h/db",
        "mysql://",
        "mysql:///db", /* neither host nor socket */
        "no-scheme-here",
        "://nohost/x",
        "postgresql://h/db",
        "mysqlx://h/db",
        "mysql://h:", /* empty port */
        "mysql://h:0/db",
        "mysql://h:65536/db",
        "mysql://h:12ab/db",
        "mysql://h:-1/db",
        "mysql://h:99999999999/db",
        "mysql://[::1/db",
        "mysql://[]:3306/db",
        "mysql://[::1]x/db",
        "mysql://h/db/extra",
        "mysql://h/d%zzb", /* bad escape */
        "mysql://h/d%00b", /* NUL */
        "mysql://u:p%4@h/db",
        "mysql://h/db#fragment",
        "mysql://h /db",
        "mysql://h/db?socket", /* option without '=' */
        "mysql://h/db?socket=",
        "mysql://h/db?sockets=/x", /* unknown option */
        "mysql://h/db?password=x",
        "mysql://h/db?ssl-mode=sometimes",
        "mysql://h/db?connect-timeout=0",
        "mysql://h/db?connect-timeout=abc",
        "mysql://h/db?connect-timeout=3601",
        "mysql://otherhost/db?socket=/x.sock", /* a socket is local */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dlock_mysql_url u;
        memset(&u, 0x5a, sizeof u);
        ck_assert_msg(dlock__mysql_parse_url(bad[i], &u) == DLOCK_EINVAL, "accepted: '%s'", bad[i]);
        ck_assert_msg(strlen(dlock_last_error()) > 0, "no error text for '%s'", bad[i]);
        /* Nothing is left to free. */
        ck_assert_ptr_null(u.user);
        ck_assert_ptr_null(u.host);
        ck_assert_ptr_null(u.socket);
    }
    ck_assert_int_eq(dlock__mysql_parse_url(NULL, NULL), DLOCK_EINVAL);
    dlock__mysql_url_free(NULL);
}
END_TEST

START_TEST(url_errors_hide_the_password)
{
    static const char *const bad[] = {
        "mysql://u:Sup3rS3cret@h:99999/db",
        "mysql://u:Sup3rS3cret@h/db?Sup3rS3cret=1",
        "mysql://u:Sup3rS3cret@h/db?ssl-mode=Sup3rS3cret",
        "mysql://u:Sup3rS3cret%zz@h/db",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dlock_mysql_url u;
        ck_assert_int_eq(dlock__mysql_parse_url(bad[i], &u), DLOCK_EINVAL);
        ck_assert_msg(strstr(dlock_last_error(), "Sup3rS3cret") == NULL, "leaked: %s", dlock_last_error());
        dlock_client *c = NULL;
        ck_assert_int_eq(dlock_open(bad[i], &c), DLOCK_EINVAL);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(dlock_last_error(), "Sup3rS3cret") == NULL, "leaked: %s", dlock_last_error());
    }
}
END_TEST

/* A password with a raw '/' or '#' cuts the URL in the wrong place: the
 * message says to percent-encode them, quoting none of it (issue 24). */
START_TEST(url_password_hint)
{
    static const char *const hinted[] = {"mysql://u:pa/Sup3r@127.0.0.1/db", "mysql://u:pa#Sup3r@127.0.0.1/db"};
    for (size_t i = 0; i < sizeof hinted / sizeof hinted[0]; i++) {
        struct dlock_mysql_url u;
        ck_assert_int_eq(dlock__mysql_parse_url(hinted[i], &u), DLOCK_EINVAL);
        ck_assert_msg(strstr(dlock_last_error(), "percent-encode"), "%s", dlock_last_error());
        ck_assert_msg(!strstr(dlock_last_error(), "Sup3r"), "%s", dlock_last_error());
    }
    /* No '@' after it: no talk of passwords. */
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://h:xx/db", &u), DLOCK_EINVAL);
    ck_assert_ptr_null(strstr(dlock_last_error(), "password"));
}
END_TEST

/* Issue 23, item 10: the userinfo is read before the query, so a '?' typed
 * unencoded in the password stays in it; a password with a '/' (which ends
 * the authority) is still never quoted back as an unknown option. */
START_TEST(url_userinfo_before_the_query)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://app:123?hunter2=x@127.0.0.1:1/db", &u), DLOCK_OK);
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "123?hunter2=x");
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_uint_eq(u.port, 1);
    ck_assert_str_eq(u.database, "db");
    dlock__mysql_url_free(&u);
    /* An '@' in an option value after the path is the option's. */
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://u@h/db?ssl-ca=/a@b", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "h");
    ck_assert_str_eq(u.ssl_ca, "/a@b");
    dlock__mysql_url_free(&u);
    static const char *const bad[] = {
        "mysql://app:123?hunter2=x@127.0.0.1:1/db",     /* parses; the connection fails */
        "mysql://app:12/3?hunter2=x@127.0.0.1:1/db",    /* '/' in the password */
        "mysql://app:1/2?ssl-mode=1&hunter2=x@h/db",    /* an option, then the rest */
        "mysql://app@h/x?hunter2=x@y",                  /* '@' after an option */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dlock__mysql_parse_url(bad[i], &u) == DLOCK_OK)
            dlock__mysql_url_free(&u);
        ck_assert_msg(strstr(dlock_last_error(), "hunter2") == NULL, "%s leaked: %s", bad[i], dlock_last_error());
        dlock_client *c = NULL;
        int rc = dlock_open(bad[i], &c);
        ck_assert_msg(rc == DLOCK_EINVAL || rc == DLOCK_ECONN, "%s: %d %s", bad[i], rc, dlock_last_error());
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(dlock_last_error(), "hunter2") == NULL, "%s leaked: %s", bad[i], dlock_last_error());
    }
    /* An option whose name runs across the last '@' (its head could end a
     * password) is not shown either. */
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://u:pw@h/db?ab@cdefg=1", &u), DLOCK_EINVAL);
    ck_assert_msg(strstr(dlock_last_error(), "ab@") == NULL, "%s", dlock_last_error());
    /* An option that is nowhere near a password is still named. */
    ck_assert_int_eq(dlock__mysql_parse_url("mysql://u:pw@h/db?colour=1", &u), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "'colour'"));
}
END_TEST

void dlt_mysql_add_url(Suite *s)
{
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, url_full);
    tcase_add_test(tc, url_minimal_and_schemes);
    tcase_add_test(tc, url_ipv6);
    tcase_add_test(tc, url_socket);
    tcase_add_test(tc, url_options);
    tcase_add_test(tc, url_malformed);
    tcase_add_test(tc, url_errors_hide_the_password);
    tcase_add_test(tc, url_userinfo_before_the_query);
    tcase_add_test(tc, url_password_hint);
    suite_add_tcase(s, tc);
}
