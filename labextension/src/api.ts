/**
 * The astrocyte-lab server extension's REST API (`/astrocyte/api/...`), called through Jupyter's
 * ServerConnection so the token, cookies and XSRF header go with every request.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface ITutorial {
  id: string;
  file: string;
  title: string;
  launcher: boolean;
  available: boolean;
}

export interface IDatasetInfo {
  name: string;
  module: string;
  width: number;
  height: number;
  channels: number;
  images: number;
  categories: string[];
  updated: string;
  description: string;
}

export interface IModelInfo {
  name: string;
  module: string;
  architecture: string;
  width: number;
  height: number;
  channels: number;
  categories: string[];
  created: string;
  duration_s: number;
  description: string;
  performance: { [metric: string]: number };
}

/** A dataset or model the server could not read: listed beside the good ones with the reason. */
export interface IBrokenItem {
  name: string;
  reason: string;
}

export interface IJobRecord {
  id: string;
  name: string;
  state: 'pending' | 'running' | 'done' | 'failed' | 'cancelled' | 'lost';
  step: number;
  total: number | null;
  message: string;
  elapsed: number;
  remaining: number | null;
  started: number;
  cancel_requested?: boolean;
}

/** An error the server answered with: its JSON `message` and the HTTP status. */
export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export async function requestAPI<T>(
  endpoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'astrocyte/api', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(`cannot reach the astrocyte-lab server extension: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = {};
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    const hint =
      response.status === 404 && !data.message
        ? ' (is the astrocyte_lab server extension enabled?)'
        : '';
    throw new ApiError(
      (data.message || response.statusText) + hint,
      response.status
    );
  }
  return data as T;
}

export function post<T>(endpoint: string, body: object): Promise<T> {
  return requestAPI<T>(endpoint, {
    method: 'POST',
    body: JSON.stringify(body)
  });
}
