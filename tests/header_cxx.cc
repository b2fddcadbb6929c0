// The public header compiles as C++ and links from a C++ program.
#include "dlock.h"

#include <cstring>

int main()
{
    dlock_client *client = nullptr;
    if (dlock_open("", &client) != DLOCK_EINVAL)
        return 1;
    return std::strcmp(dlock_version(), DLOCK_VERSION_STRING) == 0 ? 0 : 1;
}
