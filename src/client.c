/* placeholder until the client lands: registers nothing */
#include "cfaccess.h"
void cf_client_open(lua_State *L) { (void)L; }
