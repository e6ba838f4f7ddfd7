/**
 * One job: find the page's elements by id (index.html holds them all, but for each field's problem
 * message, which field-problems.ts makes; the UI modules share this lookup).
 */
export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
