// Every service of the loopback test stack, in start order. Each module exports the same shape:
// { name, provisioned(), provision(), start() -> endpoints, stop(), endpoints(), running(), env(endpoints) }.
import helm from './helm.mjs';
import k8s from './k8s.mjs';
import kafka from './kafka.mjs';
import minio from './minio.mjs';
import python from './python.mjs';

export const services = [python, kafka, minio, k8s, helm];
