import { MessagePublisher, kafkaSettingsFromEnv } from '@lvr/messaging';

export const TRAINER_CLIENT_ID = 'lvr-trainer';

export const publisherProvider = {
  provide: MessagePublisher,
  useFactory: () => new MessagePublisher(kafkaSettingsFromEnv(TRAINER_CLIENT_ID)),
};
