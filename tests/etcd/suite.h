/* The etcd suite's parts in tests/etcd/ (check_etcd.c runs them). */
#ifndef DLT_ETCD_SUITE_H
#define DLT_ETCD_SUITE_H

#include <check.h>

/* tcase "units": the URL parser, the key encoding and base64, with vectors
 * (no server needed). */
void dlt_etcd_add_units(Suite *s);

#endif
