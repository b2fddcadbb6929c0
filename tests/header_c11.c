/* The public header compiles as strict C11 (see Makefile.am for the flags). */
#include "dlock.h"

int main(void)
{
    dlock_client *client = 0;
    return dlock_open(0, &client) == DLOCK_EINVAL && DLOCK_VERSION_MAJOR >= 0 ? 0 : 1;
}
