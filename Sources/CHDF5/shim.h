#include <hdf5.h>
#include <string.h>

/* HDF5 spells many constants as macros that call H5open() or read _g globals; Swift cannot
   import those, so these helpers hand them over as plain functions. */

static inline hid_t clipsafety_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t clipsafety_h5s_all(void) { return H5S_ALL; }
static inline hid_t clipsafety_h5e_default(void) { return H5E_DEFAULT; }
static inline unsigned clipsafety_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned clipsafety_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t clipsafety_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t clipsafety_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline size_t clipsafety_h5t_variable(void) { return H5T_VARIABLE; }
static inline H5F_libver_t clipsafety_h5f_libver_latest(void) { return H5F_LIBVER_LATEST; }
static inline hid_t clipsafety_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t clipsafety_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t clipsafety_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t clipsafety_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t clipsafety_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t clipsafety_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t clipsafety_h5t_std_i64le(void) { return H5T_STD_I64LE; }

/* Turns off HDF5's printing of its error stack to stderr (hostile files would spam it). */
static inline herr_t clipsafety_h5_silence_errors(void) { return H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* 1 when `name` in `loc` is a hard link, 0 for a soft, external or user-defined link, negative
   on error. (H5Lget_info's struct changed in 1.12; this keeps Swift independent of that.) */
static inline int clipsafety_h5_link_is_hard(hid_t loc, const char *name) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, H5P_DEFAULT) < 0) return -1;
    return info.type == H5L_TYPE_HARD ? 1 : 0;
}

/* 1 and the target's object header address in `address` when `name` in `loc` is a hard link,
   0 for a soft, external or user-defined link, negative on error. */
static inline int clipsafety_h5_hard_link_address(hid_t loc, const char *name, unsigned long long *address) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, H5P_DEFAULT) < 0) return -1;
    if (info.type != H5L_TYPE_HARD) return 0;
#if H5_VERSION_GE(1, 12, 0)
    haddr_t a;
    memcpy(&a, &info.u.token, sizeof(a));
    *address = (unsigned long long)a;
#else
    *address = (unsigned long long)info.u.address;
#endif
    return 1;
}

static herr_t clipsafety_h5_first_error(unsigned n, const H5E_error2_t *err, void *data) {
    char *out = (char *)data;
    if (n == 0 && err != NULL && err->desc != NULL) {
        size_t i = 0;
        for (; i + 1 < 256 && err->desc[i] != 0; i++) out[i] = err->desc[i];
        out[i] = 0;
    }
    return 0;
}

/* Copies the most specific message of the current error stack (up to 255 bytes) into `out`
   (256 bytes) and clears the stack. */
static inline void clipsafety_h5_take_error(char *out) {
    out[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, clipsafety_h5_first_error, out);
    H5Eclear2(H5E_DEFAULT);
}

/* The file address of an object's header (H5O_info changed in 1.12: the address became a token,
   whose first bytes are the address for native files). */
static inline int clipsafety_h5_object_address(hid_t object, unsigned long long *address) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(object, &info, H5O_INFO_BASIC) < 0) return -1;
    haddr_t a;
    memcpy(&a, &info.token, sizeof(a));
    *address = (unsigned long long)a;
#else
    H5O_info_t info;
    if (H5Oget_info2(object, &info, H5O_INFO_BASIC) < 0) return -1;
    *address = (unsigned long long)info.addr;
#endif
    return 0;
}

/* The name of member `index` (by name order) of group `loc` into `out` (`size` bytes); the
   full length of the name, or negative on error. */
static inline long clipsafety_h5_member_name(hid_t loc, unsigned long long index, char *out, size_t size) {
    return (long)H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)index, out, size, H5P_DEFAULT);
}

/* The number of attributes of an object, or negative on error. */
static inline long clipsafety_h5_attribute_count(hid_t object) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(object, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
#else
    H5O_info_t info;
    if (H5Oget_info2(object, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
#endif
    return (long)info.num_attrs;
}

