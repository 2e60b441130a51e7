// Window presets: the file's own windows, a window from the histogram, and lung /
// mediastinum / bone. CT is in Hounsfield units, so its presets are the usual fixed windows;
// a radiograph's values have no fixed scale, so its presets are set on the image's own range
// of values (the central 99% of its histogram), measured from displayed black (0) to
// displayed white (1): the same preset looks the same on MONOCHROME1 and MONOCHROME2 films.

import { type LoadedImage, type Window, autoWindow, invertedByFile } from './viewer/image';

export interface Preset {
  name: string;
  center: number;
  width: number;
  /** Fractions of the image's range (radiographs), else modality units. */
  relative?: boolean;
}

export const RADIOGRAPH_PRESETS: Preset[] = [
  { name: 'Lung', center: 0.42, width: 0.85, relative: true },
  { name: 'Mediastinum', center: 0.68, width: 0.55, relative: true },
  { name: 'Bone', center: 0.6, width: 1.3, relative: true },
];

export const CT_PRESETS: Preset[] = [
  { name: 'Lung', center: -600, width: 1500 },
  { name: 'Mediastinum', center: 40, width: 400 },
  { name: 'Bone', center: 400, width: 1800 },
];

export function presetWindow(img: LoadedImage, p: Preset): Window {
  if (!p.relative) return { center: p.center, width: p.width, fn: 'LINEAR', name: p.name };
  const auto = autoWindow(img);
  const lo = auto.center - 0.5 - (auto.width - 1) / 2;
  const span = Math.max(1, auto.width - 1);
  // Displayed black to white runs against the values on an inverted (MONOCHROME1) film.
  const c = invertedByFile(img.info) ? 1 - p.center : p.center;
  return { center: lo + c * span, width: Math.max(1, p.width * span), fn: 'LINEAR', name: p.name };
}

/** Every window offered for an image, in hotkey order (Shift+1, Shift+2, ...). */
export function windowsFor(img: LoadedImage, project: Preset[] | undefined): Window[] {
  const modality = img.info.modality;
  const out: Window[] = [...img.info.windows];
  out.push(autoWindow(img));
  const presets = project && project.length ? project : modality === 'CT' ? CT_PRESETS : RADIOGRAPH_PRESETS;
  for (const p of presets) out.push(presetWindow(img, p));
  return out;
}
