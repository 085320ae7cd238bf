import { DynamicModule, Module } from '@nestjs/common';
import { API_CONFIG, type ApiConfig } from '../config/api-config';
import { ImageLoader, systemResolver, type Resolver } from './image-loader';

/** Image loading for requests (data URLs, allow-listed files, public http(s) hosts). */
@Module({})
export class MediaModule {
  /** @param dnsResolver name resolution for image URLs (SSRF tests pass one that never leaves the machine) */
  static forRoot(dnsResolver: Resolver = systemResolver): DynamicModule {
    return {
      module: MediaModule,
      global: true,
      providers: [
        {
          provide: ImageLoader,
          inject: [API_CONFIG],
          useFactory: (config: ApiConfig) => new ImageLoader(config.images, dnsResolver),
        },
      ],
      exports: [ImageLoader],
    };
  }
}
