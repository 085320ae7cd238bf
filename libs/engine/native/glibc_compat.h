// Included by every source of the addon that calls dlopen & co. (each translation unit binds its own references).
#ifndef LVR_GLIBC_COMPAT_H
#define LVR_GLIBC_COMPAT_H

#if defined(__x86_64__) && defined(__GLIBC__)
// glibc 2.34 moved dlopen & co. into libc under a new symbol version; bind the old one so that an addon built on a
// newer distribution still loads on GPU hosts with an older glibc.
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
#endif

#endif
