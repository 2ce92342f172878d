/**
 * astrocyte-lab in JupyterLab: a launcher category "Astrocyte" (one card per workflow, each copying its tutorial
 * notebook into the file browser's folder and opening it), command-palette entries for the same plus the Voila
 * dashboard, and a left sidebar over the workspace (datasets, trained models, jobs).
 *
 * Everything JupyterLab-specific (launcher, palette, file browser, lab shell) is optional, so the plugin
 * activates harmlessly in pages without them (Voila also denies it by name).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { ITutorial, post, requestAPI } from './api';
import { AstrocyteSidebar } from './sidebar';

const PLUGIN_ID = 'astrocyte-lab-labextension:plugin';
const CATEGORY = 'Astrocyte';

namespace CommandIDs {
  export const openTutorial = 'astrocyte:open-tutorial';
  export const openDashboard = 'astrocyte:open-dashboard';
  export const showSidebar = 'astrocyte:show-sidebar';
  export const refreshSidebar = 'astrocyte:refresh-sidebar';
}

/** The launcher's workflows, in order (the server knows their notebook files). */
const WORKFLOWS: { id: string; title: string; caption: string; colour: string }[] = [
  { id: 'anomaly_detection', title: 'Anomaly detection', caption: 'Learn normal parts, flag the rest', colour: '#d9534f' },
  { id: 'classification', title: 'Classification', caption: 'Sort images into categories', colour: '#2f80ed' },
  { id: 'continual_learning', title: 'Continual learning', caption: 'Teach a deployed model new samples and classes', colour: '#9b51e0' },
  { id: 'object_detection', title: 'Object detection', caption: 'Find and box objects (also rotated boxes)', colour: '#f2994a' },
  { id: 'segmentation', title: 'Segmentation', caption: 'Label every pixel', colour: '#27ae60' },
  { id: 'dashboard', title: 'Dashboard', caption: 'The Astrocyte app in one notebook', colour: '#56606b' }
];

function workflowIcon(id: string, colour: string): LabIcon {
  const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
  <circle cx="12" cy="12" r="3.2" fill="${colour}"/>
  <g stroke="${colour}" stroke-width="1.6" stroke-linecap="round" fill="none">
    <path d="M12 8.8V3M12 15.2V21M8.8 12H3M15.2 12H21M9.7 9.7 5.6 5.6M14.3 14.3l4.1 4.1M14.3 9.7l4.1-4.1M9.7 14.3l-4.1 4.1"/>
  </g>
  <g fill="${colour}"><circle cx="12" cy="3" r="1.3"/><circle cx="12" cy="21" r="1.3"/><circle cx="3" cy="12" r="1.3"/><circle cx="21" cy="12" r="1.3"/></g>
</svg>`;
  return new LabIcon({ name: `astrocyte:${id}`, svgstr });
}

const ICONS: { [id: string]: LabIcon } = {};
for (const workflow of WORKFLOWS) {
  ICONS[workflow.id] = workflowIcon(workflow.id, workflow.colour);
}
const astrocyteIcon = workflowIcon('logo', 'var(--jp-inverse-layout-color3, #616161)');

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Launcher cards, commands and a workspace sidebar for astrocyte-lab.',
  autoStart: true,
  requires: [],
  optional: [ILauncher, ICommandPalette, IDefaultFileBrowser, ILabShell, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands } = app;
    const titles = new Map(WORKFLOWS.map(w => [w.id, w]));

    /** The file browser's folder, relative to the server root ('' when there is no file browser). */
    const currentFolder = (): string => {
      const path = fileBrowser?.model.path ?? '';
      const colon = path.indexOf(':');
      return colon >= 0 && colon < path.indexOf('/') ? path.slice(colon + 1) : path;
    };

    const copyTutorial = async (tutorial: string, folder: string, reuse = false): Promise<string> => {
      const answer = await post<{ path: string }>('tutorials/copy', { tutorial, folder, reuse });
      return answer.path;
    };

    commands.addCommand(CommandIDs.openTutorial, {
      label: args => {
        const workflow = titles.get(args.tutorial as string);
        return args.isPalette
          ? `New ${workflow?.title ?? args.tutorial} notebook (Astrocyte tutorial)`
          : workflow?.title ?? String(args.tutorial ?? 'Astrocyte tutorial');
      },
      caption: args => {
        const workflow = titles.get(args.tutorial as string);
        return `${workflow?.caption ?? ''}: copy the tutorial notebook into the current folder and open it`;
      },
      icon: args => (args.isPalette ? undefined : ICONS[args.tutorial as string] ?? astrocyteIcon),
      execute: async args => {
        const tutorial = String(args.tutorial ?? '');
        // the launcher passes its folder as cwd; the palette has none: use the file browser's folder
        const folder =
          typeof args.folder === 'string'
            ? args.folder
            : typeof args.cwd === 'string'
              ? args.cwd
              : currentFolder();
        try {
          const path = await copyTutorial(tutorial, folder);
          await fileBrowser?.model.refresh();
          return await commands.execute('docmanager:open', { path, factory: 'Notebook' });
        } catch (error) {
          Notification.error(`Could not open the ${tutorial} tutorial: ${errorMessage(error)}`, { autoClose: 8000 });
        }
      }
    });

    commands.addCommand(CommandIDs.openDashboard, {
      label: 'Open Astrocyte dashboard',
      caption: 'The Astrocyte app as a Voila dashboard, in a new browser tab',
      execute: async () => {
        // open the tab first (a popup after an await is blocked), then point it at the dashboard
        const tab = window.open('', '_blank');
        try {
          const path = await copyTutorial('dashboard', '', true);
          const url = URLExt.join(PageConfig.getBaseUrl(), 'voila/render', URLExt.encodeParts(path));
          if (tab) {
            tab.location.href = url;
          } else {
            window.open(url, '_blank');
          }
          return url;
        } catch (error) {
          tab?.close();
          Notification.error(`Could not open the dashboard: ${errorMessage(error)}`, { autoClose: 8000 });
        }
      }
    });

    if (launcher) {
      WORKFLOWS.forEach((workflow, rank) => {
        launcher.add({
          command: CommandIDs.openTutorial,
          args: { tutorial: workflow.id },
          category: CATEGORY,
          rank
        });
      });
    }

    if (palette) {
      for (const workflow of WORKFLOWS) {
        palette.addItem({
          command: CommandIDs.openTutorial,
          args: { tutorial: workflow.id, isPalette: true },
          category: CATEGORY
        });
      }
      palette.addItem({ command: CommandIDs.openDashboard, category: CATEGORY });
    }

    // the tutorial list from the server tells which notebooks are installed; a missing one greys its card out
    requestAPI<{ tutorials: ITutorial[] }>('tutorials')
      .then(({ tutorials }) => {
        for (const tutorial of tutorials) {
          if (!tutorial.available && titles.has(tutorial.id)) {
            titles.get(tutorial.id)!.caption += ' (tutorial notebook not installed)';
          }
        }
        commands.notifyCommandChanged(CommandIDs.openTutorial);
      })
      .catch(error => console.warn('astrocyte-lab: server extension not reachable:', error));

    if (!labShell) {
      return; // no lab shell (for instance a Voila page): no sidebar
    }

    const sidebar = new AstrocyteSidebar({
      openInNotebook: async (kind, name) => {
        try {
          const answer = await post<{ path: string }>('notebooks', { kind, name, folder: currentFolder() });
          await fileBrowser?.model.refresh();
          await commands.execute('docmanager:open', { path: answer.path, factory: 'Notebook' });
        } catch (error) {
          Notification.error(`Could not open ${name}: ${errorMessage(error)}`, { autoClose: 8000 });
        }
      },
      exportModel: async name => {
        const id = Notification.emit(`Exporting ${name}…`, 'in-progress', { autoClose: false });
        try {
          const answer = await post<{ path: string }>('models/export', { model: name });
          Notification.update({ id, message: `Exported ${name} to ${answer.path}`, type: 'success', autoClose: 8000 });
          return answer.path;
        } catch (error) {
          Notification.update({ id, message: `Export of ${name} failed: ${errorMessage(error)}`, type: 'error', autoClose: 10000 });
          return '';
        }
      },
      error: message => Notification.error(message, { autoClose: 8000 }),
      info: message => console.info(`astrocyte-lab: ${message}`)
    });
    sidebar.title.icon = astrocyteIcon;
    labShell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, 'astrocyte-sidebar');

    commands.addCommand(CommandIDs.showSidebar, {
      label: 'Show Astrocyte workspace',
      execute: () => labShell.activateById(sidebar.id)
    });
    commands.addCommand(CommandIDs.refreshSidebar, {
      label: 'Refresh Astrocyte workspace',
      execute: () => sidebar.refresh()
    });
    palette?.addItem({ command: CommandIDs.showSidebar, category: CATEGORY });
    palette?.addItem({ command: CommandIDs.refreshSidebar, category: CATEGORY });
  }
};

export default plugin;
