/**
 * A set with O(1) add, delete and access by position, so a picker can choose a random member without
 * copying the set. Deletion swaps the last member into the hole, so positions are not stable.
 */
export class IndexedSet<T> {
  private readonly items: T[] = [];
  private readonly positions = new Map<T, number>();

  get size(): number {
    return this.items.length;
  }

  has(item: T): boolean {
    return this.positions.has(item);
  }

  at(index: number): T {
    return this.items[index] as T;
  }

  add(item: T): void {
    if (this.positions.has(item)) return;
    this.positions.set(item, this.items.length);
    this.items.push(item);
  }

  delete(item: T): void {
    const index = this.positions.get(item);
    if (index === undefined) return;
    const last = this.items.pop() as T;
    this.positions.delete(item);
    if (last !== item) {
      this.items[index] = last;
      this.positions.set(last, index);
    }
  }

  random(random: () => number): T | undefined {
    const n = this.items.length;
    return n === 0 ? undefined : this.items[Math.floor(random() * n)];
  }

  values(): readonly T[] {
    return this.items;
  }
}
