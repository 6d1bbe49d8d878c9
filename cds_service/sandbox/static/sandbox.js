/* Naltrexone CDS sandbox page: plays the EHR. Plain JavaScript, no build step, no dependencies.
 *
 * It asks the sandbox API (/sandbox/api/...) for patients, charts and the CDS Hooks request an EHR would send,
 * then calls the real service endpoints itself: /cds-services/naltrexone-order-select while the order is being
 * filled in, /cds-services/naltrexone-order-sign on Sign, and /cds-services/<id>/feedback when a suggestion is
 * accepted or a card is overridden.
 */
"use strict";

(function () {
  const INDICATOR = {
    critical: { word: "Stop", icon: "\u2716", order: 0 },
    warning: { word: "Caution", icon: "\u26A0", order: 1 },
    info: { word: "Info", icon: "\u2139", order: 2 },
  };
  const $ = (id) => document.getElementById(id);

  const state = {
    options: null,
    patients: [],
    patient: null, // the chart of the selected patient
    draftId: null, // the draft MedicationRequest id of the order on screen
    orderRemoved: false,
    handled: new Map(), // rule id -> what the clinician did with its card (override or suggestion), this draft
    seq: 0, // ignores out-of-date order-select answers
    selectTimer: null,
  };

  // -- small helpers --------------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path, options) {
    const response = await fetch(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const issue = body && body.issue && body.issue[0] && body.issue[0].diagnostics;
      throw new Error(`${path}: HTTP ${response.status}${issue ? ` — ${issue}` : ""}`);
    }
    return body;
  }

  function postJson(path, body) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  function topic(card) {
    return (card.source && card.source.topic && card.source.topic.code) || "unknown";
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // GitHub-flavoured Markdown, the subset cards use: paragraphs, "- " lists, **bold**, `code`, [links](https://...).
  function inline(text) {
    return escapeHtml(text)
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
  }

  function markdown(md) {
    const root = el("div", { class: "md" });
    let paragraph = [];
    let list = null;
    let item = null;
    const flush = () => {
      if (paragraph.length) {
        const p = el("p");
        p.innerHTML = inline(paragraph.join(" "));
        root.append(p);
        paragraph = [];
      }
    };
    const flushItem = () => {
      if (item) {
        const li = el("li");
        li.innerHTML = inline(item.join(" "));
        list.append(li);
        item = null;
      }
    };
    for (const raw of String(md || "").split("\n")) {
      const line = raw.trim();
      const bullet = /^[-*]\s+/.exec(line);
      if (!line) {
        flushItem();
        flush();
        list = null;
      } else if (bullet) {
        flush();
        flushItem();
        if (!list) {
          list = el("ul");
          root.append(list);
        }
        item = [line.slice(bullet[0].length)];
      } else if (item) {
        item.push(line);
      } else {
        paragraph.push(line);
      }
    }
    flushItem();
    flush();
    return root;
  }

  function table(caption, columns, rows, emptyText) {
    if (!rows.length) return el("div", {}, el("h3", { class: "chart-caption", text: caption }), el("p", { class: "empty", text: emptyText }));
    return el(
      "table",
      {},
      el("caption", { text: caption }),
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))
    );
  }

  function statusChip(status) {
    const active = ["active", "on-hold", "intended", "in-progress", "recurrence", "relapse"].includes(status);
    return el("span", { class: `status${active ? " status-active" : ""}`, text: status || "unknown" });
  }

  // -- service status, patients ---------------------------------------------------------------------------------
  async function checkService() {
    const status = $("service-status");
    try {
      const discovery = await api("/cds-services");
      status.textContent = `Service ready: ${discovery.services.length} CDS services`;
      status.className = "service-status ok";
    } catch (err) {
      status.textContent = "Service not reachable";
      status.className = "service-status down";
    }
  }

  function renderPatientList() {
    const filter = $("patient-filter").value.trim().toLowerCase();
    const shown = state.patients.filter(
      (p) => !filter || p.name.toLowerCase().includes(filter) || p.description.toLowerCase().includes(filter)
    );
    const list = $("patient-list");
    list.replaceChildren();
    let group = null;
    let ul = null;
    for (const p of shown) {
      if (p.group !== group) {
        group = p.group;
        list.append(el("h3", { class: "patient-group", text: group === "fixtures" ? "Project fixtures" : group }));
        ul = el("ul");
        list.append(ul);
      }
      const current = state.patient && state.patient.id === p.id;
      ul.append(
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "patient",
              "data-patient-id": p.id,
              "aria-current": current ? "true" : null,
              onclick: () => selectPatient(p.id),
            },
            el("span", { class: "patient-name", text: p.name }),
            el("span", { class: "patient-meta", text: `${p.age ?? "?"} y, ${p.gender || "unknown"} · ${p.mrn || p.id}` }),
            el("span", { class: "patient-desc", text: p.description })
          )
        )
      );
    }
    $("patient-count").textContent = `${shown.length} of ${state.patients.length} patients`;
  }

  async function selectPatient(id) {
    const chart = await api(`/sandbox/api/patients/${encodeURIComponent(id)}`);
    state.patient = chart;
    renderPatientList();
    renderBanner(chart);
    renderChart(chart);
    $("empty-state").hidden = true;
    for (const id of ["order", "chart", "banner"]) $(id).hidden = false;
    $("session-orders").replaceChildren();
    $("session").hidden = true;
    resetOrder();
    const url = new URL(window.location.href);
    url.searchParams.set("patient", id);
    window.history.replaceState(null, "", url);
  }

  function renderBanner(chart) {
    $("banner-name").textContent = chart.name;
    $("banner-mrn").textContent = chart.mrn || chart.id;
    $("banner-born").textContent = chart.birthDate ? `${chart.birthDate} (${chart.age} y)` : "unknown";
    $("banner-sex").textContent = chart.gender || "unknown";
    const allergies = chart.allergies.filter((a) => !["inactive", "resolved"].includes(a.status));
    $("banner-allergies").replaceChildren(
      allergies.length
        ? el("span", { class: "allergy-pill", text: allergies.map((a) => a.name).join(", ") })
        : el("span", { class: "nkda", text: "No known allergies" })
    );
    const scenario = $("banner-scenario");
    scenario.replaceChildren(el("strong", { text: "Scenario: " }), chart.description);
    if (chart.expect) scenario.append(` Expected cards: ${chart.expect.join(", ")}.`);
    if (chart.failSearches.length) scenario.append(` The sandbox FHIR server fails ${chart.failSearches.join(", ")} searches.`);
  }

  // -- chart tabs ------------------------------------------------------------------------------------------------
  function renderChart(chart) {
    const meds = chart.medications.map((m) => [
      el("span", {}, m.name, m.detail ? el("span", { class: "sub", text: m.detail }) : null),
      statusChip(m.status),
      el("span", {}, m.date || "—", el("span", { class: "sub", text: m.kind })),
    ]);
    fill(
      $("panel-meds"),
      table("Medications", ["Medication", "Status", "Date"], meds, "No medications on record."),
      more(chart.counts.medications, chart.medications.length)
    );
    renderLabs();
    const problems = chart.problems.map((c) => [
      el("span", {}, c.name, c.code ? el("span", { class: "sub", text: c.code }) : null),
      statusChip(c.status),
      c.onset || "—",
    ]);
    const allergies = chart.allergies.map((a) => [
      el("span", {}, a.name, a.reactions.length ? el("span", { class: "sub", text: a.reactions.join(", ") }) : null),
      statusChip(a.status),
      a.criticality || "—",
    ]);
    fill(
      $("panel-problems"),
      table("Problems", ["Problem", "Status", "Onset"], problems, "No problems on record."),
      more(chart.counts.problems, chart.problems.length),
      table("Allergies", ["Substance", "Status", "Criticality"], allergies, "No known allergies.")
    );
  }

  function fill(node, ...children) {
    node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  }

  function more(total, shown) {
    return total > shown ? el("p", { class: "hint", text: `Showing ${shown} of ${total}.` }) : null;
  }

  function renderLabs() {
    const chart = state.patient;
    if (!chart) return;
    const onlyRelevant = $("labs-relevant").checked;
    const labs = chart.labs.filter((o) => !onlyRelevant || o.relevant);
    const rows = labs.map((o) => [
      el("span", {}, o.name, o.range ? el("span", { class: "sub", text: `ref ${o.range}` }) : null),
      el("span", {}, o.value || "—", o.flag ? el("span", { class: `flag flag-${o.flag}`, text: ` ${o.flag}` }) : null),
      o.date || "—",
    ]);
    $("labs-table").replaceChildren(
      table("Results", ["Test", "Value", "Date"], rows, onlyRelevant ? "No results the service reads." : "No results.")
    );
  }

  function setupTabs() {
    const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
    const activate = (tab, focus) => {
      for (const t of tabs) {
        const selected = t === tab;
        t.setAttribute("aria-selected", String(selected));
        t.tabIndex = selected ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !selected;
      }
      if (focus) tab.focus();
      if (tab.id === "tab-activity") refreshActivity();
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => activate(tab, false));
      tab.addEventListener("keydown", (e) => {
        const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
        if (next === undefined) return;
        e.preventDefault();
        activate(tabs[(next + tabs.length) % tabs.length], true);
      });
    });
  }

  // -- the order form ---------------------------------------------------------------------------------------------
  const fields = () => ["dose", "frequency", "supply", "refills"].map($);

  function resetOrder() {
    state.draftId = null;
    state.orderRemoved = false;
    state.handled = new Map();
    state.seq += 1;
    $("product").value = "";
    fields().forEach((f) => {
      f.disabled = true;
      f.value = "";
    });
    $("sign").disabled = true;
    $("cancel-order").disabled = true;
    $("order-line").textContent = "";
    $("order-line").className = "order-line";
    setOrderStatus("", "");
    $("cards").replaceChildren();
    $("cds").hidden = true;
  }

  function newDraftId() {
    const random = crypto.getRandomValues(new Uint32Array(2));
    return `sandbox-draft-${random[0].toString(36)}${random[1].toString(36)}`;
  }

  function onProductChange() {
    const key = $("product").value;
    if (!key) {
      resetOrder();
      return;
    }
    const product = state.options.products.find((p) => p.key === key);
    const suggested = state.patient.order && state.patient.order.product === key ? state.patient.order : product.default;
    $("dose").value = suggested.dose;
    $("dose-unit").textContent = product.doseUnit === "mg" ? "mg" : "tablet(s)";
    $("frequency").value = suggested.frequency;
    $("supply").value = suggested.supplyDays;
    $("refills").value = suggested.refills;
    fields().forEach((f) => (f.disabled = false));
    $("sign").disabled = false;
    $("cancel-order").disabled = false;
    state.draftId = newDraftId();
    state.orderRemoved = false;
    state.handled = new Map();
    $("order-line").className = "order-line";
    setOrderStatus("", "");
    scheduleSelect(0);
  }

  function readOrder() {
    const dose = Number($("dose").value);
    const supply = Number($("supply").value);
    const refills = Number($("refills").value);
    if (!$("product").value) return { error: "Choose a product." };
    if (!(dose > 0)) return { error: "Enter a dose above zero." };
    if (!Number.isInteger(supply) || supply < 1 || supply > 400) return { error: "Days' supply must be 1 to 400." };
    if (!Number.isInteger(refills) || refills < 0 || refills > 24) return { error: "Refills must be 0 to 24." };
    return {
      order: { product: $("product").value, dose, frequency: $("frequency").value, supplyDays: supply, refills },
    };
  }

  function mode() {
    return document.querySelector('input[name="mode"]:checked').value;
  }

  function scheduleSelect(delay) {
    clearTimeout(state.selectTimer);
    state.selectTimer = setTimeout(() => callHook("order-select"), delay);
  }

  function setOrderStatus(text, kind) {
    const status = $("order-status");
    status.textContent = text;
    status.className = `order-status${kind ? ` ${kind}` : ""}`;
  }

  // -- calling the service ----------------------------------------------------------------------------------------
  async function callHook(hook) {
    if (!state.patient || !state.draftId || state.orderRemoved) return null;
    const read = readOrder();
    if (read.error) {
      setOrderStatus(read.error, "blocked");
      return null;
    }
    const seq = ++state.seq;
    const built = await postJson("/sandbox/api/hook-request", {
      patientId: state.patient.id,
      hook,
      mode: mode(),
      draftId: state.draftId,
      order: read.order,
    });
    $("order-line").textContent = built.orderText;
    const started = performance.now();
    let answer;
    try {
      answer = await postJson(`/cds-services/${built.service}`, built.request);
    } catch (err) {
      if (seq === state.seq) showError(hook, err);
      return null;
    }
    const ms = Math.round(performance.now() - started);
    if (seq !== state.seq) return null; // a newer call superseded this one
    showRaw(built.request, answer);
    renderCards(answer.cards || [], hook, ms, built.service);
    refreshActivity();
    return answer;
  }

  function showError(hook, err) {
    $("cds").hidden = false;
    $("cds-meta").textContent = `${hook} failed`;
    $("cards").replaceChildren(el("p", { class: "card-feedback error", role: "alert", text: String(err.message || err) }));
  }

  function showRaw(request, response) {
    $("raw").hidden = false;
    $("raw-request").textContent = JSON.stringify(request, null, 2);
    $("raw-response").textContent = JSON.stringify(response, null, 2);
  }

  async function sign(event) {
    event.preventDefault();
    if ($("sign").disabled) return;
    clearTimeout(state.selectTimer);
    setOrderStatus("Checking before signing…", "");
    const answer = await callHook("order-sign");
    if (!answer) return;
    const open = (answer.cards || []).filter((c) => c.indicator !== "info" && !state.handled.has(topic(c)));
    $("cds").scrollIntoView({ block: "start", behavior: "smooth" });
    if (open.length) {
      setOrderStatus(
        `Not signed: ${open.length} card${open.length > 1 ? "s need" : " needs"} a decision — accept a suggestion or override with a reason, then sign again.`,
        "blocked"
      );
    } else {
      setOrderStatus("Order signed (simulated: nothing leaves the sandbox).", "signed");
      fields().forEach((f) => (f.disabled = true));
      $("product").disabled = false;
      $("sign").disabled = true;
    }
  }

  // -- cards ------------------------------------------------------------------------------------------------------
  function renderCards(cards, hook, ms, service) {
    $("cds").hidden = false;
    const sorted = [...cards].sort((a, b) => INDICATOR[a.indicator].order - INDICATOR[b.indicator].order);
    const counts = ["critical", "warning", "info"].map((k) => `${sorted.filter((c) => c.indicator === k).length} ${k}`);
    $("cds-meta").textContent = `${hook} · ${sorted.length} card${sorted.length === 1 ? "" : "s"} (${counts.join(", ")}) · ${ms} ms · ${mode() === "fetch" ? "service fetched the chart" : "prefetch sent"}`;
    const list = $("cards");
    list.replaceChildren();
    if (!sorted.length) {
      list.append(el("p", { class: "no-cards", text: "No cards: the service has nothing to say about this order." }));
      return;
    }
    for (const card of sorted) list.append(renderCard(card, service));
  }

  function renderCard(card, service) {
    const meta = INDICATOR[card.indicator] || INDICATOR.info;
    const summaryId = `card-${card.uuid}-summary`;
    const feedback = el("p", { class: "card-feedback", role: "status" });
    const node = el(
      "article",
      { class: `card card-${card.indicator}`, "data-rule": topic(card), "data-card-uuid": card.uuid, "aria-labelledby": summaryId },
      el(
        "div",
        { class: "card-head" },
        el("span", { class: `badge badge-${card.indicator}` }, el("span", { "aria-hidden": "true", text: meta.icon }), ` ${meta.word}`),
        el("h3", { class: "card-summary", id: summaryId, text: card.summary })
      )
    );
    if (card.detail) {
      const details = el("details", { class: "card-detail", open: card.indicator === "critical" }, el("summary", { text: "Details and evidence" }));
      details.append(markdown(card.detail));
      node.append(details);
    }
    const source = card.source || {};
    node.append(
      el(
        "p",
        { class: "card-source" },
        "Source: ",
        source.url ? el("a", { href: source.url, target: "_blank", rel: "noopener noreferrer", text: source.label }) : source.label,
        ` · rule `,
        el("code", { text: topic(card) })
      )
    );
    if (card.links && card.links.length) {
      node.append(
        el(
          "p",
          { class: "card-links" },
          card.links.map((l) => el("a", { href: l.url, target: "_blank", rel: "noopener noreferrer", text: l.label }))
        )
      );
    }
    const actions = el("div", { class: "card-actions" });
    for (const suggestion of card.suggestions || []) {
      const button = el(
        "button",
        { type: "button", class: "btn btn-small suggestion", "aria-pressed": "false" },
        suggestion.label,
        suggestion.isRecommended ? el("span", { class: "recommended", "aria-hidden": "true", text: " \u2605" }) : null,
        suggestion.isRecommended ? el("span", { class: "sr-only", text: " (recommended)" }) : null
      );
      button.addEventListener("click", () => accept(service, card, suggestion, button, node, feedback));
      actions.append(button);
    }
    const earlier = state.handled.get(topic(card));
    if ((card.overrideReasons || []).length && !earlier) actions.append(overrideForm(service, card, node, feedback));
    if (actions.childElementCount) node.append(actions);
    node.append(feedback);
    if (earlier) {
      node.classList.add("done");
      feedback.textContent = `\u2713 ${earlier} earlier in this order.`;
    }
    return node;
  }

  function overrideForm(service, card, node, feedback) {
    const selectId = `override-reason-${card.uuid}`;
    const commentId = `override-comment-${card.uuid}`;
    const select = el(
      "select",
      { id: selectId },
      el("option", { value: "", text: "Choose a reason…" }),
      card.overrideReasons.map((r, i) => el("option", { value: String(i), text: r.display }))
    );
    const comment = el("textarea", { id: commentId, rows: "1", maxlength: "500" });
    const button = el("button", { type: "button", class: "btn btn-small", text: "Override" });
    const form = el(
      "details",
      { class: "override" },
      el("summary", { text: "Override…" }),
      el(
        "div",
        { class: "override-body" },
        el("label", { for: selectId }, "Override reason", select),
        el("label", { for: commentId }, "Comment (optional)", comment),
        button
      )
    );
    button.addEventListener("click", async () => {
      if (select.value === "") {
        feedback.textContent = "Choose an override reason first.";
        feedback.className = "card-feedback error";
        select.focus();
        return;
      }
      const reason = card.overrideReasons[Number(select.value)];
      const item = {
        card: card.uuid,
        outcome: "overridden",
        overrideReason: { reason, ...(comment.value.trim() ? { userComment: comment.value.trim() } : {}) },
        outcomeTimestamp: new Date().toISOString(),
      };
      if (await sendFeedback(service, item, feedback, `overridden — ${reason.display}`)) {
        state.handled.set(topic(card), `Overridden (${reason.display})`);
        node.classList.add("done");
        button.disabled = true;
        select.disabled = true;
        comment.disabled = true;
      }
    });
    return form;
  }

  async function sendFeedback(service, item, feedback, what) {
    try {
      const answer = await postJson(`/cds-services/${service}/feedback`, { feedback: [item] });
      feedback.textContent = `\u2713 Feedback sent: ${what} (the service received ${answer.received}).`;
      feedback.className = "card-feedback";
      refreshActivity();
      return true;
    } catch (err) {
      feedback.textContent = `Feedback failed: ${err.message || err}`;
      feedback.className = "card-feedback error";
      return false;
    }
  }

  async function accept(service, card, suggestion, button, node, feedback) {
    const item = {
      card: card.uuid,
      outcome: "accepted",
      acceptedSuggestions: [{ id: suggestion.uuid }],
      outcomeTimestamp: new Date().toISOString(),
    };
    if (!(await sendFeedback(service, item, feedback, `accepted “${suggestion.label}”`))) return;
    button.setAttribute("aria-pressed", "true");
    button.disabled = true;
    node.classList.add("done");
    state.handled.set(topic(card), `Accepted “${suggestion.label}”`);
    for (const action of suggestion.actions || []) applyAction(action);
  }

  function applyAction(action) {
    if (action.type === "delete" && action.resourceId === `MedicationRequest/${state.draftId}`) {
      state.orderRemoved = true;
      state.seq += 1; // drop any order-select still in flight
      clearTimeout(state.selectTimer);
      $("order-line").className = "order-line removed";
      $("product").value = "";
      fields().forEach((f) => (f.disabled = true));
      $("sign").disabled = true;
      setOrderStatus("Naltrexone order removed (suggestion accepted).", "signed");
      return;
    }
    if (action.type === "create" && action.resource) {
      const r = action.resource;
      const what =
        (r.code && (r.code.text || (r.code.coding && r.code.coding[0] && r.code.coding[0].display))) ||
        (r.medicationCodeableConcept && r.medicationCodeableConcept.text) ||
        action.description;
      $("session").hidden = false;
      $("session-orders").append(el("li", {}, `${what} `, el("span", { class: "status", text: `${r.resourceType}, ${r.status || "draft"}` })));
    }
  }

  // -- activity ----------------------------------------------------------------------------------------------------
  async function refreshActivity() {
    let data;
    try {
      data = await api("/sandbox/api/activity");
    } catch (_) {
      return;
    }
    const items = [];
    for (const f of data.feedback) {
      items.push(
        el(
          "div",
          { class: "activity-item" },
          el("strong", { text: `feedback: ${f.outcome}` }),
          f.overrideReason ? ` — ${f.overrideReason}` : "",
          el("span", { class: "sub", text: `${f.service} · card ${f.card.slice(0, 8)} · ${new Date(f.at).toLocaleTimeString()}` })
        )
      );
    }
    for (const c of data.calls) {
      const sources = [...new Set(Object.values(c.provenance))].join(", ") || "none";
      items.push(
        el(
          "div",
          { class: "activity-item" },
          el("strong", { text: `${c.service.replace("naltrexone-", "")}` }),
          ` → HTTP ${c.status}, ${c.cards.length} card${c.cards.length === 1 ? "" : "s"} in ${c.latencyMs} ms`,
          el("span", {
            class: "sub",
            text: `data: ${sources}${c.fetchErrors ? ` · ${c.fetchErrors} fetch error(s)` : ""}${c.unavailable.length ? ` · unavailable: ${c.unavailable.join(", ")}` : ""} · ${c.cards.map((k) => k.rule).join(", ") || "no cards"}`,
          })
        )
      );
    }
    $("activity").replaceChildren(...(items.length ? items : [el("p", { class: "empty", text: "No calls yet." })]));
  }

  // -- start ---------------------------------------------------------------------------------------------------------
  async function start() {
    setupTabs();
    checkService();
    const [options, patients] = await Promise.all([api("/sandbox/api/options"), api("/sandbox/api/patients")]);
    state.options = options;
    state.patients = patients.patients;
    for (const p of options.products) $("product").append(el("option", { value: p.key, text: p.label }));
    for (const f of options.frequencies) $("frequency").append(el("option", { value: f.key, text: f.label }));
    renderPatientList();

    $("patient-filter").addEventListener("input", renderPatientList);
    $("product").addEventListener("change", onProductChange);
    for (const f of fields()) f.addEventListener("change", () => scheduleSelect(250));
    $("dose").addEventListener("input", () => scheduleSelect(600));
    for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", () => scheduleSelect(0));
    $("order-form").addEventListener("submit", sign);
    $("cancel-order").addEventListener("click", resetOrder);
    $("labs-relevant").addEventListener("change", renderLabs);
    for (const pick of document.querySelectorAll("[data-pick]")) {
      if (!state.patients.some((p) => p.id === pick.dataset.pick)) pick.closest("li").hidden = true;
      pick.addEventListener("click", () => selectPatient(pick.dataset.pick));
    }

    const wanted = new URLSearchParams(window.location.search).get("patient");
    if (wanted && state.patients.some((p) => p.id === wanted)) await selectPatient(wanted);
    document.body.dataset.ready = "true";
  }

  start().catch((err) => {
    $("service-status").textContent = `Sandbox failed to start: ${err.message || err}`;
    $("service-status").className = "service-status down";
  });
})();
