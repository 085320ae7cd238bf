import { Module } from '@nestjs/common';
import { MetricsModule } from '../metrics/metrics.module';
import { ChatController } from './chat.controller';
import { ChatService } from './chat.service';
import { GenerationEvents } from './generation-events';

/** `POST /v1/chat/completions`: validation, admission, generation and the OpenAI response or stream. */
@Module({
  imports: [MetricsModule],
  providers: [ChatService, GenerationEvents],
  controllers: [ChatController],
  exports: [GenerationEvents],
})
export class ChatModule {}
