// Phone numbers for people: formatNumber("+14155550100") -> "+1 (415) 555-0100",
// formatNumber("+442071838750") -> "+44 207 183 8750". Anything that is not E.164
// ("anonymous", a SIP address) is returned as it is.
//
//   formatNumber(text) -> string
//   countryCode(e164)  -> "1" | "44" | ... | null

// ITU country codes of one and two digits; every other code has three.
const ONE = new Set(["1", "7"]);
const TWO = new Set([
  "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
  "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66",
  "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
]);

export function countryCode(e164) {
  if (typeof e164 !== "string" || !/^\+[1-9]\d{6,14}$/.test(e164)) return null;
  const digits = e164.slice(1);
  if (ONE.has(digits[0])) return digits[0];
  if (TWO.has(digits.slice(0, 2))) return digits.slice(0, 2);
  return digits.slice(0, 3);
}

function groups(national) {
  // Leading groups of 2-4 digits, the last group of 4 (or what is left).
  const out = [];
  let rest = national;
  while (rest.length > 4) {
    const take = rest.length - 4 >= 3 ? (rest.length === 7 || rest.length === 10 ? 3 : 2) : rest.length - 4;
    out.push(rest.slice(0, take));
    rest = rest.slice(take);
  }
  out.push(rest);
  return out.join(" ");
}

export function formatNumber(text) {
  if (typeof text !== "string") return "";
  const code = countryCode(text);
  if (code === null) return text;
  const national = text.slice(1 + code.length);
  if (code === "1" && national.length === 10) {
    return `+1 (${national.slice(0, 3)}) ${national.slice(3, 6)}-${national.slice(6)}`;
  }
  return `+${code} ${groups(national)}`;
}
