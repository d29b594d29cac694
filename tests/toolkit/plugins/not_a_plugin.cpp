// A shared object without the plugin entry points (plugin_test.cpp).
extern "C" int not_a_plugin() {
  return 1;
}
