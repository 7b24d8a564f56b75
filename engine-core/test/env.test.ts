// engine-core's environment switches (env.ts): the lessons' AIOS_* choices read and checked in one place.
import { describe, expect, it } from 'vitest';

import { envChoice } from '../src/env.ts';

describe('envChoice', () => {
  it('envChoice: the first choice when unset, a listed value as given, anything else refused with the list', () => {
    const name = 'AIOS_TEST_SWITCH';
    const before = process.env[name];
    try {
      delete process.env[name];
      expect(envChoice(name, ['race', 'gather'])).toBe('race');
      process.env[name] = 'gather';
      expect(envChoice(name, ['race', 'gather'])).toBe('gather');
      process.env[name] = 'Gather';
      expect(() => envChoice(name, ['race', 'gather'])).toThrow('AIOS_TEST_SWITCH must be one of race, gather, got "Gather"');
    } finally {
      if (before === undefined) delete process.env[name];
      else process.env[name] = before;
    }
  });

  it('reads the environment it is given', () => {
    expect(envChoice('AIOS_X', ['0', '1'], {})).toBe('0');
    expect(envChoice('AIOS_X', ['0', '1'], { AIOS_X: '1' })).toBe('1');
    expect(() => envChoice('AIOS_X', ['0', '1'], { AIOS_X: '' })).toThrow('AIOS_X must be one of 0, 1, got ""');
  });
});
