// The conversation pane. The instant-message wire (end-to-end encrypted
// envelopes, client/im.go) is not in the browser client yet: the pane shows
// the conversation with the selected contact and says so plainly when asked
// to send, rather than pretending a message went.

export class ChatPane {
  constructor({ log, input, send, title, note }) {
    this.log = log;
    this.input = input;
    this.sendBtn = send;
    this.title = title;
    this.note = note;
    this.peer = "";
    this.sendBtn.addEventListener("click", () => this.send());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); this.send(); }
    });
  }

  open(peer) {
    this.peer = peer;
    this.title.textContent = peer ? `Conversation with ${peer}` : "Conversation";
    this.log.replaceChildren();
    this.note.textContent = "";
  }

  send() {
    const text = this.input.value.trim();
    if (!text) return;
    if (!this.peer) {
      this.note.textContent = "Choose a contact to write to.";
      return;
    }
    this.note.textContent = "Messages cannot be sent from the browser yet; use `parley chat` for now. Your text is kept in the field.";
  }
}
