/*
 * tinygen host target: stand-in for ESP-IDF's generated sdkconfig.h, which the ESP-NN
 * adapters (firmware/tinygen/esp_nn/) include before esp_nn.h.
 *
 * It defines no CONFIG_NN_OPTIMIZED and no CONFIG_IDF_TARGET_*, so esp_nn.h maps every
 * esp_nn_* call to ESP-NN's ANSI C version (esp_nn_ansi_c.h): the path that runs on the
 * host. An ESP32-S3 project's real sdkconfig.h selects the assembly instead.
 */
#ifndef TG_SDKCONFIG_H
#define TG_SDKCONFIG_H
#endif /* TG_SDKCONFIG_H */
