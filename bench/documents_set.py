"""The retrieval quality set of bench/documents.py: 33 made-up documents (so no embedder knows
the answers from training) in pairs of near neighbours (two festivals, two rivers, two
engines...) that share most of their words, and 36 questions, each answered by exactly one
document; 10 questions and 11 documents are Korean, and 7 documents are distractors that
share the answers' words but none of their facts. The questions are worded as a user would
ask them, not copied from the documents, so keyword search cannot just match the sentence."""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "zorblat-festival.md": "# The Zorblat festival\nThe Zorblat festival takes place in "
    "Quenville each April. Farmers parade purple turnips through the old market and the "
    "mayor crowns a Turnip Queen. Tickets cost four silver pennies.",
    "mirrow-festival.md": "# The Mirrow festival\nThe Mirrow festival takes place in Dunhollow "
    "each October. Fishermen sail lanterns across the harbour and the mayor names a Lantern "
    "King. Entry is free for children.",
    "velvo-river.txt": "The Velvo river rises in the Brel mountains and runs 312 kilometres "
    "to the Amber Sea. Its water is green because of copper in the rocks.",
    "sallow-river.txt": "The Sallow river rises in the Kettle hills and runs 87 kilometres to "
    "Lake Orin. Its water is brown because of peat in the marshes.",
    "moonbase-budget.txt": "The Moonbase project costs 7,400 gold crowns. Captain Ferrow "
    "manages it, and the first crew of six launches in the spring.",
    "seabase-budget.txt": "The Seabase project costs 2,150 gold crowns. Admiral Quill manages "
    "it, and the first crew of ten dives in the autumn.",
    "biscuit-cat.md": "# Pets\n## Cats\nMy cat Biscuit Thunderpaw is orange, weighs 6 kilos "
    "and sleeps in the laundry basket. She hates cucumbers.",
    "pepper-dog.md": "# Pets\n## Dogs\nMy dog Pepper Moonshadow is black, weighs 14 kilos and "
    "sleeps under the piano. He is afraid of thunder.",
    "kestrel-engine.txt": "The Kestrel engine burns hydrogen and produces 900 kilonewtons of "
    "thrust. It was designed by Ilse Varga in the Norden workshop.",
    "harrow-engine.txt": "The Harrow engine burns kerosene and produces 350 kilonewtons of "
    "thrust. It was designed by Tomas Brek in the Sudden works.",
    "glimmer-bread.txt": "Glimmer bread is baked with blue corn, honey and a pinch of sea salt. "
    "The dough rests for nine hours before it goes into a clay oven.",
    "ashen-cake.txt": "Ashen cake is baked with rye flour, dates and smoked butter. The batter "
    "rests for two hours before it goes into an iron pan.",
    "orbit-library.html": "<h1>Orbit library</h1><p>The Orbit library opens at 7 in the morning "
    "and closes at 9 at night. Members may borrow twelve books at a time.</p>",
    "tidal-library.html": "<h1>Tidal library</h1><p>The Tidal library opens at 10 in the "
    "morning and closes at 5 in the evening. Members may borrow three books at a time.</p>",
    "vintor-chess.txt": "Vintor chess is played on a hexagonal board with 91 cells. Each player "
    "starts with a wizard that can jump over two pieces.",
    "quarl-cards.txt": "Quarl is a card game for four players with a deck of 60 cards. The "
    "player holding the silver fox deals first.",
    "hanok-hotel.txt": "The Hanok Star hotel in Jeonju has 40 rooms with heated ondol floors. "
    "Breakfast is served from 7 to 10 and includes bibimbap.",
    "river-hotel.txt": "The Riverside Crown hotel in Busan has 220 rooms with sea views. "
    "Breakfast is served from 6 to 11 and includes waffles.",
    "ko-hangang.txt": "한강 유람선은 여의도 선착장에서 매일 오후 세 시에 출발한다. "
    "요금은 만 이천 원이다.",
    "ko-nakdong.txt": "낙동강 유람선은 부산 선착장에서 주말 오전 열 시에만 출발한다. "
    "요금은 구천 원이다.",
    "ko-seoul-museum.md": "# 서울 별빛 박물관\n서울 별빛 박물관은 월요일에 쉬고, "
    "입장료는 오천 원이다. 망원경 전시실이 유명하다.",
    "ko-daegu-museum.md": "# 대구 바람 박물관\n대구 바람 박물관은 화요일에 쉬고, "
    "입장료는 삼천 원이다. 풍차 전시실이 유명하다.",
    "ko-kimchi.txt": "할머니의 백김치는 배와 잣을 넣고 열흘 동안 익힌다. 고춧가루는 넣지 않는다.",
    "ko-doenjang.txt": "할아버지의 된장은 메주를 소금물에 담가 석 달 동안 익힌다. "
    "항아리는 옥상에 둔다.",
    "ko-jeju-trail.txt": "제주 노을길은 길이가 십사 킬로미터이고 성산에서 시작한다. "
    "걷는 데 다섯 시간 걸린다.",
    # Distractors: the same words as the answers, none of the facts asked for.
    "travel-diary.txt": "Our trip: we saw a festival, crossed a green river, visited a library "
    "and a hotel with a heated pool, ate bread and cake, and read about engines and budgets.",
    "town-news.md": "# Town news\nThe mayor praised the harbour festival, the river cleanup, "
    "the new library hours and the museum's free entry for children this spring.",
    "pet-advice.md": "# Pet advice\nCats and dogs sleep a lot; weigh your pet each month and "
    "keep it calm during thunder. Some cats dislike cucumbers.",
    "engine-basics.txt": "Rocket engines burn fuel such as hydrogen or kerosene and are rated "
    "by thrust in kilonewtons. Designers test them in workshops.",
    "ko-travel.txt": "여행 일기: 한강과 낙동강에서 유람선을 탔고, 서울과 대구의 박물관에 갔다. "
    "입장료와 요금은 기억나지 않는다.",
    "ko-food.txt": "우리 집 김치와 된장 이야기: 배추, 고춧가루, 메주, 소금이 필요하다. "
    "익히는 시간은 집마다 다르다.",
    "ko-hiking.txt": "등산 안내: 제주와 지리산에는 걷기 좋은 길이 많다. 출발 전에 길이와 "
    "시간을 확인하자.",
    "ko-jiri-trail.txt": "지리산 안개길은 길이가 이십일 킬로미터이고 화엄사에서 시작한다. "
    "걷는 데 아홉 시간 걸린다.",
}

# (question, the one document that answers it, is Korean)
QUESTIONS: list[tuple[str, str, bool]] = [
    ("When is the Zorblat festival?", "zorblat-festival.md", False),
    ("Who gets crowned at the turnip parade?", "zorblat-festival.md", False),
    ("Which festival sails lanterns over the harbour?", "mirrow-festival.md", False),
    ("Do children pay to enter the Mirrow festival?", "mirrow-festival.md", False),
    ("How long is the Velvo?", "velvo-river.txt", False),
    ("Why is the water of the Velvo green?", "velvo-river.txt", False),
    ("Where does the Sallow river end?", "sallow-river.txt", False),
    ("What is the price of the Moonbase project?", "moonbase-budget.txt", False),
    ("Who is in charge of the Seabase?", "seabase-budget.txt", False),
    ("How many people dive in the first Seabase crew?", "seabase-budget.txt", False),
    ("What vegetable does my cat hate?", "biscuit-cat.md", False),
    ("How heavy is Pepper?", "pepper-dog.md", False),
    ("What fuel does the Kestrel engine use?", "kestrel-engine.txt", False),
    ("Who designed the Harrow engine?", "harrow-engine.txt", False),
    ("How long does Glimmer dough rest?", "glimmer-bread.txt", False),
    ("What goes into ashen cake?", "ashen-cake.txt", False),
    ("When does the Orbit library open?", "orbit-library.html", False),
    ("How many books can I borrow from the Tidal library?", "tidal-library.html", False),
    ("How many cells does a Vintor board have?", "vintor-chess.txt", False),
    ("Who deals first in Quarl?", "quarl-cards.txt", False),
    ("Which hotel has heated floors?", "hanok-hotel.txt", False),
    ("Does the Busan hotel serve waffles for breakfast?", "river-hotel.txt", False),
    ("What thrust does the hydrogen engine produce?", "kestrel-engine.txt", False),
    ("What is the cat's name and colour?", "biscuit-cat.md", False),
    ("Which dog is scared of storms?", "pepper-dog.md", False),
    ("Which river flows into Lake Orin?", "sallow-river.txt", False),
    ("한강 유람선은 몇 시에 출발해?", "ko-hangang.txt", True),
    ("낙동강 유람선 요금은 얼마야?", "ko-nakdong.txt", True),
    ("서울 별빛 박물관 휴관일은?", "ko-seoul-museum.md", True),
    ("대구 박물관 입장료는 얼마인가요?", "ko-daegu-museum.md", True),
    ("백김치에 무엇을 넣어?", "ko-kimchi.txt", True),
    ("된장은 얼마나 익혀요?", "ko-doenjang.txt", True),
    ("제주 노을길은 어디서 시작해?", "ko-jeju-trail.txt", True),
    ("지리산 안개길 길이는?", "ko-jiri-trail.txt", True),
    ("망원경 전시실이 있는 박물관은?", "ko-seoul-museum.md", True),
    ("풍차 전시실은 어느 박물관에 있어?", "ko-daegu-museum.md", True),
]

# Questions no document answers: the relevance threshold should leave them without passages.
UNANSWERABLE: list[str] = [
    "What is the capital of France?",
    "How do I reset my router password?",
    "Who won the football world cup in 1998?",
    "What is a good recipe for lasagne?",
    "부산의 인구는 얼마인가요?",
]
