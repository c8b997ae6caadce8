#ifndef MPQ_CIMAGE_H
#define MPQ_CIMAGE_H
#include <stddef.h>
#include <stdint.h>

/// Decodes a PNG or JPEG held in memory (told apart by their signatures) into 8-bit pixels,
/// interleaved, rows top to bottom: 1 channel for grayscale images, 3 (RGB) otherwise (alpha
/// dropped, palettes expanded, 16-bit PNG reduced to 8). Images larger than `max_pixels` are
/// refused before their pixels are allocated. Returns 0 and sets *pixels (free with free()),
/// *width, *height, *channels; otherwise nonzero with a message in `error`.
int mpq_decode_image(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels,
                     int *width, int *height, int *channels, char *error, size_t error_size);

#endif
