// Image decoding for datasets, over the system's libpng (simplified API) and libjpeg-turbo
// (libjpeg API; its errors longjmp back here and become messages).
#include "cimage.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

static int fail(char *error, size_t size, const char *message) {
    snprintf(error, size, "%s", message);
    return 1;
}

static int decode_png(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                      int *channels, char *error, size_t error_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) return fail(error, error_size, image.message);
    if (image.width == 0 || image.height == 0 || (size_t)image.width * image.height > max_pixels) {
        png_image_free(&image);
        snprintf(error, error_size, "a %ux%u PNG is larger than the limit of %zu pixels", image.width, image.height, max_pixels);
        return 1;
    }
    int color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
    image.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    uint8_t *buffer = malloc(PNG_IMAGE_SIZE(image));
    if (!buffer) { png_image_free(&image); return fail(error, error_size, "out of memory"); }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        free(buffer);
        return fail(error, error_size, image.message);
    }
    *pixels = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    *channels = color ? 3 : 1;
    return 0;
}

struct jpeg_failure {
    struct jpeg_error_mgr manager;
    jmp_buf back;
    char message[JMSG_LENGTH_MAX];
};

static void jpeg_failed(j_common_ptr info) {
    struct jpeg_failure *f = (struct jpeg_failure *)info->err;
    (*info->err->format_message)(info, f->message);
    longjmp(f->back, 1);
}

static void jpeg_quiet(j_common_ptr info, int level) { (void)info; (void)level; }

static int decode_jpeg(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                       int *channels, char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct jpeg_failure failure;
    uint8_t *volatile buffer = NULL;
    info.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_failed;
    failure.manager.emit_message = jpeg_quiet;
    if (setjmp(failure.back)) {
        jpeg_destroy_decompress(&info);
        free(buffer);
        return fail(error, error_size, failure.message);
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (info.image_width == 0 || info.image_height == 0 || (size_t)info.image_width * info.image_height > max_pixels) {
        snprintf(error, error_size, "a %ux%u JPEG is larger than the limit of %zu pixels", info.image_width, info.image_height, max_pixels);
        jpeg_destroy_decompress(&info);
        return 1;
    }
    info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    int c = info.output_components;
    size_t row = (size_t)info.output_width * c;
    buffer = malloc(row * info.output_height);
    if (!buffer) { jpeg_destroy_decompress(&info); return fail(error, error_size, "out of memory"); }
    while (info.output_scanline < info.output_height) {
        JSAMPROW line = buffer + row * info.output_scanline;
        jpeg_read_scanlines(&info, &line, 1);
    }
    jpeg_finish_decompress(&info);
    *pixels = buffer;
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    *channels = c;
    jpeg_destroy_decompress(&info);
    return 0;
}

int mpq_decode_image(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels,
                     int *width, int *height, int *channels, char *error, size_t error_size) {
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 8 && memcmp(data, png_signature, 8) == 0)
        return decode_png(data, size, max_pixels, pixels, width, height, channels, error, error_size);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(data, size, max_pixels, pixels, width, height, channels, error, error_size);
    return fail(error, error_size, "not a PNG or JPEG file (unknown signature)");
}
