/**
 * The left sidebar: the workspace's datasets, trained models and recent jobs, refreshed every few seconds
 * while visible, with actions (open in a notebook, export a package, cancel a job).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  IBrokenItem,
  IDatasetInfo,
  IJobRecord,
  IModelInfo,
  post,
  requestAPI
} from './api';

export const POLL_MS = 3000;

export interface ISidebarActions {
  /** Write a starter notebook for a dataset or model and open it. */
  openInNotebook(kind: 'dataset' | 'model', name: string): Promise<void>;
  /** Export a model package into the workspace; resolves to the file's path. */
  exportModel(name: string): Promise<string>;
  /** Report an error to the user. */
  error(message: string): void;
  /** Report a success to the user. */
  info(message: string): void;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, title: string, action: () => Promise<void>): HTMLButtonElement {
  const node = element('button', 'jp-Button jp-mod-styled jp-mod-small astrocyte-Sidebar-action', label);
  node.title = title;
  node.type = 'button';
  node.addEventListener('click', async () => {
    node.disabled = true;
    try {
      await action();
    } finally {
      node.disabled = false;
    }
  });
  return node;
}

function progress(job: IJobRecord): string {
  const steps = job.total ? `${job.step}/${job.total}` : `${job.step}`;
  const left =
    job.state === 'running' && job.remaining !== null && job.remaining !== undefined
      ? `, ${Math.round(job.remaining)} s left`
      : '';
  return `step ${steps} (${Math.round(job.elapsed)} s${left})`;
}

function metric(model: IModelInfo): string {
  const entries = Object.entries(model.performance || {});
  if (!entries.length) {
    return '';
  }
  const [key, value] = entries[0];
  return ` · ${key} ${typeof value === 'number' ? value.toFixed(3) : value}`;
}

export class AstrocyteSidebar extends Widget {
  constructor(private readonly actions: ISidebarActions) {
    super();
    this.id = 'astrocyte-sidebar';
    this.addClass('astrocyte-Sidebar');
    this.title.caption = 'Astrocyte workspace';

    const header = element('div', 'astrocyte-Sidebar-header');
    header.appendChild(element('h2', 'astrocyte-Sidebar-title', 'Astrocyte'));
    header.appendChild(
      button('Refresh', 'Reload datasets, models and jobs', () => this.refresh())
    );
    this.node.appendChild(header);
    this._workspace = element('div', 'astrocyte-Sidebar-workspace');
    this._status = element('div', 'astrocyte-Sidebar-status');
    this.node.appendChild(this._workspace);
    this.node.appendChild(this._status);
    this._datasets = this.section('Datasets', 'datasets');
    this._models = this.section('Trained models', 'models');
    this._jobs = this.section('Jobs', 'jobs');
  }

  private section(title: string, key: string): HTMLUListElement {
    const section = element('section', `astrocyte-Sidebar-section astrocyte-Sidebar-${key}`);
    section.appendChild(element('h3', 'astrocyte-Sidebar-sectionTitle', title));
    const list = element('ul', 'astrocyte-Sidebar-list');
    section.appendChild(list);
    this.node.appendChild(section);
    return list;
  }

  /** Fetch the three lists and redraw them; errors show in the status line. */
  async refresh(): Promise<void> {
    if (this._busy) {
      return;
    }
    this._busy = true;
    try {
      const [datasets, models, jobs] = await Promise.all([
        requestAPI<{
          workspace: string;
          datasets: IDatasetInfo[];
          broken?: IBrokenItem[];
        }>('datasets'),
        requestAPI<{ models: IModelInfo[]; broken?: IBrokenItem[] }>('models'),
        requestAPI<{ jobs: IJobRecord[] }>('jobs')
      ]);
      this._workspace.textContent = datasets.workspace;
      this._workspace.title = `workspace: ${datasets.workspace}`;
      this.renderDatasets(datasets.datasets, datasets.broken || []);
      this.renderModels(models.models, models.broken || []);
      this.renderJobs(jobs.jobs);
      this._status.textContent = '';
      this._status.classList.remove('astrocyte-mod-error');
    } catch (error) {
      this._status.textContent = `${(error as Error).message}`;
      this._status.classList.add('astrocyte-mod-error');
    } finally {
      this._busy = false;
    }
  }

  private empty(list: HTMLUListElement, text: string): void {
    list.appendChild(element('li', 'astrocyte-Sidebar-empty', text));
  }

  private item(list: HTMLUListElement, kind: string, name: string, detail: string): HTMLLIElement {
    const item = element('li', `astrocyte-Sidebar-item astrocyte-Sidebar-${kind}`);
    item.dataset.astrocyteName = name;
    const text = element('div', 'astrocyte-Sidebar-text');
    text.appendChild(element('span', 'astrocyte-Sidebar-name', name));
    text.appendChild(element('span', 'astrocyte-Sidebar-detail', detail));
    item.appendChild(text);
    list.appendChild(item);
    return item;
  }

  private renderDatasets(datasets: IDatasetInfo[], broken: IBrokenItem[]): void {
    const list = this._datasets;
    list.replaceChildren();
    if (!datasets.length && !broken.length) {
      this.empty(list, 'No datasets yet: create one from a tutorial notebook.');
    }
    for (const ds of datasets) {
      const detail = `${ds.module} · ${ds.images} images · ${ds.width}×${ds.height}×${ds.channels}`;
      const item = this.item(list, 'dataset', ds.name, detail);
      item.title = ds.description || ds.name;
      const actions = element('div', 'astrocyte-Sidebar-actions');
      actions.appendChild(
        button('Open', `Open ${ds.name} in a new notebook`, () =>
          this.actions.openInNotebook('dataset', ds.name)
        )
      );
      item.appendChild(actions);
    }
    this.renderBroken(list, 'dataset', broken);
  }

  /** Items the server could not read, after the good ones: the name and why, in the error colour. */
  private renderBroken(
    list: HTMLUListElement,
    kind: string,
    broken: IBrokenItem[]
  ): void {
    for (const bad of broken) {
      const detail = `unreadable: ${bad.reason}`;
      const item = this.item(list, 'broken', bad.name, detail);
      item.dataset.astrocyteKind = kind;
      item.title = bad.reason;
      item.style.color = 'var(--jp-error-color1)';
    }
  }

  private renderModels(models: IModelInfo[], broken: IBrokenItem[]): void {
    const list = this._models;
    list.replaceChildren();
    if (!models.length && !broken.length) {
      this.empty(list, 'No trained models yet.');
    }
    for (const model of models) {
      const detail = `${model.module} · ${model.architecture || 'model'} · ${model.width}×${model.height}${metric(model)}`;
      const item = this.item(list, 'model', model.name, detail);
      item.title = model.description || model.name;
      const actions = element('div', 'astrocyte-Sidebar-actions');
      actions.appendChild(
        button('Open', `Open ${model.name} in a new notebook`, () =>
          this.actions.openInNotebook('model', model.name)
        )
      );
      actions.appendChild(
        button('Export', `Write ${model.name}'s deployable package into the workspace`, async () => {
          const path = await this.actions.exportModel(model.name);
          if (path) {
            this.actions.info(`Exported ${model.name} to ${path}`);
          }
        })
      );
      item.appendChild(actions);
    }
    this.renderBroken(list, 'model', broken);
  }

  private renderJobs(jobs: IJobRecord[]): void {
    const list = this._jobs;
    list.replaceChildren();
    if (!jobs.length) {
      this.empty(list, 'No training jobs yet.');
    }
    for (const job of jobs) {
      const state = job.cancel_requested ? 'cancelling' : job.state;
      const item = this.item(list, 'job', job.name, `${progress(job)} ${job.message || ''}`.trim());
      item.dataset.astrocyteJob = job.id;
      item.dataset.astrocyteState = state;
      const badge = element('span', `astrocyte-Sidebar-state astrocyte-mod-${state}`, state);
      item.querySelector('.astrocyte-Sidebar-name')?.prepend(badge);
      if (job.state === 'running' || job.state === 'pending') {
        const actions = element('div', 'astrocyte-Sidebar-actions');
        const cancel = button('Cancel', `Stop ${job.name}`, () => this.cancelJob(job));
        cancel.disabled = !!job.cancel_requested;
        actions.appendChild(cancel);
        item.appendChild(actions);
      }
    }
  }

  private async cancelJob(job: IJobRecord): Promise<void> {
    const answer = await showDialog({
      title: 'Cancel training job',
      body: `Stop "${job.name}"? It stops at its next batch; nothing is saved for an unfinished training.`,
      buttons: [
        Dialog.cancelButton({ label: 'Keep running' }),
        Dialog.warnButton({ label: 'Cancel job' })
      ]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await post('jobs/cancel', { id: job.id });
    } catch (error) {
      this.actions.error((error as Error).message);
    }
    await this.refresh();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
    this.startPolling();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      void this.refresh();
      this.startPolling();
    }
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this.stopPolling();
  }

  protected onBeforeDetach(msg: Message): void {
    this.stopPolling();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this.stopPolling();
    super.dispose();
  }

  private startPolling(): void {
    if (this._timer === null) {
      this._timer = window.setInterval(() => {
        if (this.isVisible && !document.hidden) {
          void this.refresh();
        }
      }, POLL_MS);
    }
  }

  private stopPolling(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _busy = false;
  private _timer: number | null = null;
  private _workspace: HTMLDivElement;
  private _status: HTMLDivElement;
  private _datasets: HTMLUListElement;
  private _models: HTMLUListElement;
  private _jobs: HTMLUListElement;
}
