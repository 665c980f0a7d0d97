// @ts-check
// The screens of the unlocked app and the modules only they use, loaded by the first unlock (or
// set-up) with one dynamic import (shell.js, loadScreens), never on the page's first load: the
// locked page needs none of them. What the rest of the app calls is re-exported here.

import { openFromServiceWorker } from "../notify.js";

export { openConversation, renderList, renderListSubtitles } from "./list.js";
export { showChat, refreshChat, removeFromChat, saveDraft, updateChatBanner } from "./chat.js";
export { showInviteTaken } from "./invite.js";
export { showJoin } from "./join.js";
export { showSafety } from "./safety.js";
export { showConnectedWhenDelivered, updateConnectingState } from "./connecting.js";
export { renderNotices } from "./notices.js";
export { showNewConversation } from "./new.js";
export { showSettings } from "./settings.js";
export { notifyArrivals } from "../notify.js";
export { closeMenu } from "../message-menu.js";
export { previews } from "../previews.js";

// A notification clicked (through the service worker) opens its conversation from now on.
openFromServiceWorker();
