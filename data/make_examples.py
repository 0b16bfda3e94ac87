"""Write the bundled example CSVs (synthetic, seeded; rerun to reproduce them byte for byte).

houses.csv  regression: price of a house from its size, rooms, age, distance and district;
            has an ID column, string categories and missing cells, as real exports do.
churn.csv   binary classification: whether a subscriber left (yes/no) from usage and plan.
birds.csv   multiclass classification: the species of a bird (three, unevenly common) from its measurements
            and the island it was seen on; has an ID column, a string category and missing cells.
"""
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def houses(rng, n=1200):
    district = rng.choice(["north", "south", "east", "west", "centre"], size=n, p=[0.25, 0.2, 0.2, 0.2, 0.15])
    area = rng.gamma(9.0, 12.0, size=n).round(1)
    rooms = np.clip(np.round(area / 25 + rng.normal(0, 0.8, n)), 1, 9).astype(int)
    age = rng.integers(0, 120, size=n)
    distance = rng.exponential(6.0, size=n).round(2)
    garden = np.where(rng.random(n) < 0.35 + 0.004 * distance, "yes", "no")
    premium = pd.Series(district).map({"north": 1.0, "south": 0.9, "east": 0.85, "west": 1.05, "centre": 1.4})
    price = (2.4 * area * premium * np.exp(-distance / 25) * (1.0 - 0.0025 * np.minimum(age, 80))
             + 9.0 * rooms + np.where(garden == "yes", 18.0, 0.0) + rng.normal(0, 12.0, n))
    df = pd.DataFrame({"house_id": np.arange(100001, 100001 + n), "area_m2": area, "rooms": rooms,
                       "age_years": age, "distance_km": distance, "district": district, "garden": garden,
                       "price_k": price.round(1)})
    for column, share in (("area_m2", 0.03), ("age_years", 0.05), ("district", 0.02)):
        df.loc[rng.random(n) < share, column] = np.nan
    return df


def churn(rng, n=900):
    plan = rng.choice(["basic", "plus", "pro"], size=n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, size=n)
    fee = (pd.Series(plan).map({"basic": 19.0, "plus": 39.0, "pro": 69.0}) + rng.normal(0, 4, n)).round(2)
    calls = rng.poisson(1.5, size=n)
    logit = 1.2 - 0.06 * tenure + 0.45 * calls + 0.02 * (fee - 35) + np.where(plan == "pro", -0.8, 0.0)
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"tenure_months": tenure, "monthly_fee": fee, "support_calls": calls, "plan": plan,
                         "churned": churned})


def birds(rng, n=600):
    species = rng.choice(["finch", "sparrow", "warbler"], size=n, p=[0.5, 0.3, 0.2])
    means = {"finch": (62.0, 11.0, 18.0), "sparrow": (74.0, 12.5, 28.0), "warbler": (64.0, 9.0, 12.0)}
    wing, bill, mass = np.array([means[s] for s in species]).T  # wing and bill in mm, mass in g
    island = np.where(species == "warbler", rng.choice(["north", "south", "west"], size=n, p=[0.2, 0.2, 0.6]),
                      rng.choice(["north", "south", "west"], size=n, p=[0.45, 0.45, 0.1]))
    df = pd.DataFrame({"bird_id": [f"B{i:04d}" for i in range(1, n + 1)],
                       "wing_mm": (wing + rng.normal(0, 4.0, n)).round(1),
                       "bill_mm": (bill + rng.normal(0, 1.3, n)).round(1),
                       "mass_g": (mass * rng.lognormal(0, 0.2, n)).round(1), "island": island, "species": species})
    for column, share in (("wing_mm", 0.04), ("mass_g", 0.03), ("island", 0.05)):
        df.loc[rng.random(n) < share, column] = np.nan
    return df


if __name__ == "__main__":
    rng = np.random.default_rng(2026)
    houses(rng).to_csv(HERE / "houses.csv", index=False)
    churn(rng).to_csv(HERE / "churn.csv", index=False)
    birds(rng).to_csv(HERE / "birds.csv", index=False)
