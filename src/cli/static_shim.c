/* static_shim.c — linked into the static CLI only (meson: static_cli).
 *
 * libarchive's pax writer, which sp_archive_create uses, shares an object
 * file with archive_write_set_format(), which names every writer, the xar
 * writer among them; the xar writer needs libxml2, and a static libxml2
 * needs ICU and libstdc++ (about 30 MB). sandpit never writes xar, so
 * the xar writer is this stub: the linker takes it instead of libarchive's
 * and leaves libxml2 out. */
#include <archive.h>

int archive_write_set_format_xar(struct archive *a)
{
    archive_set_error(a, -1, "xar is not supported");
    return ARCHIVE_FATAL;
}
