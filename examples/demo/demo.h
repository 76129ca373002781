/* demo.h -- the demo's routes, shared by the binary and the tests. */
#ifndef CANTEEN_DEMO_H
#define CANTEEN_DEMO_H

#include <canteen.h>

/* Register every demo route on app. 0 or a negative CN_E* code. */
int demo_register(cn_app *app);

#endif
